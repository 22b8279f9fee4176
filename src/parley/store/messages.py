"""Messages: the writer's group insert, history pages, edits and tombstones."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from parley.store.database import Connection, Database, Record


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID | None
    body: str
    client_id: str | None
    inserted_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class NewMessage:
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    body: str
    client_id: str | None


class RejectedMessages(Exception):
    """The database refused the batch's data (a constraint or a value), not the connection.

    Retrying the messages one by one isolates the offending one; a connection error, by contrast,
    would fail every retry too.
    """


class PendingInsert(Protocol):
    """A batch insert under way (`MessageStore.start_insert_batch`)."""

    async def result(self) -> list[Written]:
        """The rows, in the order given; raises what the insert raised."""
        ...


@dataclass(frozen=True)
class Written:
    """The row a new message became, and whether it was already there (a client_id resend)."""

    message: Message
    duplicate: bool


_COLUMNS = (
    "id, conversation_id, seq, sender_id, body, client_id, inserted_at, edited_at, deleted_at"
)


def _columns_of(alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in _COLUMNS.split(","))


def message_from(row: Record | Mapping[str, Any]) -> Message:
    return Message(**{field: row[field] for field in Message.__dataclass_fields__})


# One statement, one round trip, for a whole batch from any number of conversations. Run outside an
# explicit transaction, it is its own transaction: PostgreSQL commits it when it ends, so a batch
# costs the writer a single exchange with the server (no BEGIN, no COMMIT, no separate look-up). The
# rows arrive with every client_id at most once (see `insert_batch`), in the order they were handed
# over, and `ord` is each row's position, 1-based, which the result rows carry back:
# - `resent`: a row whose (conversation, sender, client_id) is already stored is not inserted; its
#   original comes back with duplicate = true. A lateral subquery with a LIMIT cannot be flattened
#   into a join, so PostgreSQL probes the unique index once per row whatever its statistics say:
#   without the LIMIT, a plan made while messages was young (before autoanalyze) scanned the whole
#   table on every batch, and the server's CPU per batch grew with the table (measured: 3 -> 16
#   ms per 100-row batch over the first 120k messages; flat at 3.5 ms with it);
# - seq = the conversation's last_seq + position among its new rows, so numbers have no gaps and no
#   duplicates whatever happened before (restarts, failed batches): the database is the one place
#   the next number comes from, and the conversation rows are locked (in id order, so two writers
#   could never deadlock) while it is taken;
# - the conversations' last_seq and last_message_at move in the same statement.
_INSERT_BATCH = f"""
WITH input AS (
    SELECT t.conversation_id, t.sender_id, t.body, t.client_id, t.ord
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
         WITH ORDINALITY AS t(conversation_id, sender_id, body, client_id, ord)
),
resent AS MATERIALIZED (
    SELECT i.ord, {_columns_of("m")}
    FROM input i
    CROSS JOIN LATERAL (
        SELECT * FROM messages x
        WHERE x.conversation_id = i.conversation_id AND x.sender_id = i.sender_id
              AND x.client_id = i.client_id
        LIMIT 1
    ) m
),
fresh AS (
    SELECT i.* FROM input i WHERE NOT EXISTS (SELECT 1 FROM resent r WHERE r.ord = i.ord)
),
locked AS (
    SELECT c.id, c.last_seq FROM conversations c
    WHERE c.id IN (SELECT DISTINCT conversation_id FROM fresh)
    ORDER BY c.id FOR UPDATE
),
numbered AS MATERIALIZED (
    SELECT f.*,
           l.last_seq + row_number() OVER (PARTITION BY f.conversation_id ORDER BY f.ord) AS seq
    FROM fresh f JOIN locked l ON l.id = f.conversation_id
),
inserted AS (
    INSERT INTO messages (conversation_id, seq, sender_id, body, client_id)
    SELECT conversation_id, seq, sender_id, body, client_id FROM numbered ORDER BY ord
    RETURNING {_COLUMNS}
),
bumped AS (
    UPDATE conversations c
    SET last_seq = s.max_seq, last_message_at = s.at, updated_at = s.at
    FROM (SELECT conversation_id, max(seq) AS max_seq, max(inserted_at) AS at
          FROM inserted GROUP BY conversation_id) s
    WHERE c.id = s.conversation_id
)
SELECT n.ord, false AS duplicate, {_columns_of("ins")}
FROM inserted ins JOIN numbered n ON n.conversation_id = ins.conversation_id AND n.seq = ins.seq
UNION ALL
SELECT ord, true, {_COLUMNS} FROM resent
"""

MessageKey = tuple[uuid.UUID, uuid.UUID | None, str]
"""What makes a message a resend: (conversation, sender, client_id)."""


async def insert_batch(conn: Connection, batch: list[NewMessage]) -> list[Written]:
    """Insert a batch with one statement (asyncio side); results line up with `batch`.

    A message whose (conversation, sender, client_id) is already stored, or repeated earlier in the
    batch, is not inserted: it comes back as the original row with `duplicate=True`. Run on a
    connection outside a transaction, the statement commits by itself (one round trip); inside
    one, it is part of it.
    """
    # Repeats within the batch are folded here, so the statement sees each client_id once.
    unique: list[NewMessage] = []
    first: dict[MessageKey, int] = {}
    slots: list[tuple[int, bool]] = []  # per message: its row in `unique`, and whether a repeat
    for new in batch:
        if new.client_id is not None:
            key = (new.conversation_id, new.sender_id, new.client_id)
            if key in first:
                slots.append((first[key], True))
                continue
            first[key] = len(unique)
        slots.append((len(unique), False))
        unique.append(new)
    rows = await conn.fetch(
        _INSERT_BATCH,
        [m.conversation_id for m in unique],
        [m.sender_id for m in unique],
        [m.body for m in unique],
        [m.client_id for m in unique],
    )
    stored: list[Written | None] = [None] * len(unique)
    for row in rows:
        stored[row["ord"] - 1] = Written(message_from(row), duplicate=row["duplicate"])
    results: list[Written] = []
    for index, repeat in slots:
        written = stored[index]
        assert written is not None, "every row is either inserted or resent"
        results.append(Written(written.message, duplicate=written.duplicate or repeat))
    return results


class MessageStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert_batch(self, batch: list[NewMessage]) -> list[Written]:
        """Insert a batch with one statement, its own transaction; raises `RejectedMessages` if its
        data is refused."""
        return await self.start_insert_batch(batch).result()

    def start_insert_batch(self, batch: list[NewMessage]) -> PendingInsert:
        """`insert_batch`, started now: the caller may work while it runs, then await `result()`."""

        async def run(pool: asyncpg.Pool) -> list[Written]:
            try:
                async with pool.acquire() as conn:
                    return await insert_batch(conn, batch)
            except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
                raise RejectedMessages(str(exc)) from exc

        return self._db.submit(run)

    async def before(
        self, conversation_id: uuid.UUID, *, limit: int, before_seq: int | None
    ) -> list[Message]:
        """History, newest first: the last `limit` messages, or those before `before_seq`."""
        rows = await self._db.fetch(
            f"""SELECT {_COLUMNS} FROM messages
                WHERE conversation_id = $1 AND ($2::bigint IS NULL OR seq < $2)
                ORDER BY seq DESC LIMIT $3""",
            conversation_id,
            before_seq,
            limit,
        )
        return [message_from(row) for row in rows]

    async def after(
        self, conversation_id: uuid.UUID, *, after_seq: int, limit: int
    ) -> list[Message]:
        """Catch-up, oldest first: messages with seq > `after_seq`."""
        rows = await self._db.fetch(
            f"""SELECT {_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2
                ORDER BY seq LIMIT $3""",
            conversation_id,
            after_seq,
            limit,
        )
        return [message_from(row) for row in rows]

    async def recent_client_ids(self, conversation_id: uuid.UUID, limit: int) -> list[Message]:
        """The newest messages that carry a client_id (warms a conversation's resend cache)."""
        rows = await self._db.fetch(
            f"""SELECT {_COLUMNS} FROM messages
                WHERE conversation_id = $1 AND client_id IS NOT NULL
                ORDER BY seq DESC LIMIT $2""",
            conversation_id,
            limit,
        )
        return [message_from(row) for row in rows]

    async def edit(
        self, conversation_id: uuid.UUID, seq: int, sender_id: uuid.UUID, body: str
    ) -> Message | None:
        """The sender edits a live message; None when there is no such message of theirs."""
        row = await self._db.fetchrow(
            f"""UPDATE messages SET body = $4, edited_at = now()
                WHERE conversation_id = $1 AND seq = $2 AND sender_id = $3 AND deleted_at IS NULL
                RETURNING {_COLUMNS}""",
            conversation_id,
            seq,
            sender_id,
            body,
        )
        return message_from(row) if row else None

    async def tombstone(
        self, conversation_id: uuid.UUID, seq: int, sender_id: uuid.UUID
    ) -> Message | None:
        """Delete a message's content but keep its seq, so history has no holes."""
        row = await self._db.fetchrow(
            f"""UPDATE messages SET body = '', deleted_at = now()
                WHERE conversation_id = $1 AND seq = $2 AND sender_id = $3 AND deleted_at IS NULL
                RETURNING {_COLUMNS}""",
            conversation_id,
            seq,
            sender_id,
        )
        return message_from(row) if row else None

    async def get(self, conversation_id: uuid.UUID, seq: int) -> Message | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq = $2",
            conversation_id,
            seq,
        )
        return message_from(row) if row else None
