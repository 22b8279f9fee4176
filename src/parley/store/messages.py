"""Messages: the writer's group insert, history pages, edits and tombstones."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True)
class Written:
    """The row a new message became, and whether it was already there (a client_id resend)."""

    message: Message
    duplicate: bool


_COLUMNS = (
    "id, conversation_id, seq, sender_id, body, client_id, inserted_at, edited_at, deleted_at"
)

_M_COLUMNS = ", ".join(f"m.{column.strip()}" for column in _COLUMNS.split(","))


def message_from(row: Record | Mapping[str, Any]) -> Message:
    return Message(**{field: row[field] for field in Message.__dataclass_fields__})


# One statement, one round trip, for a whole batch from any number of conversations. The rows
# arrive already de-duplicated (see `insert_batch`), in the order they were handed over:
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
locked AS (
    SELECT c.id, c.last_seq FROM conversations c
    WHERE c.id IN (SELECT DISTINCT conversation_id FROM input)
    ORDER BY c.id FOR UPDATE
),
numbered AS (
    SELECT i.*,
           l.last_seq + row_number() OVER (PARTITION BY i.conversation_id ORDER BY i.ord) AS seq
    FROM input i JOIN locked l ON l.id = i.conversation_id
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
SELECT {_COLUMNS} FROM inserted ORDER BY conversation_id, seq
"""

# Resends: for each (conversation, sender, client_id) asked about, the stored message if any. The
# lateral form makes PostgreSQL probe the unique index once per row instead of scanning messages.
_FIND_RESENDS = f"""
SELECT {_M_COLUMNS}
FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS t(conversation_id, sender_id, client_id)
CROSS JOIN LATERAL (
    SELECT * FROM messages x
    WHERE x.conversation_id = t.conversation_id AND x.sender_id = t.sender_id
          AND x.client_id = t.client_id
) m
"""


def _key(
    conversation_id: uuid.UUID, sender_id: uuid.UUID | None, client_id: str | None
) -> tuple[uuid.UUID, uuid.UUID | None, str | None]:
    return (conversation_id, sender_id, client_id)


async def insert_batch(conn: Connection, batch: list[NewMessage]) -> list[Written]:
    """Insert a batch in one transaction (asyncio side); results line up with `batch`.

    A message whose (conversation, sender, client_id) is already stored, or repeated earlier in the
    batch, is not inserted: it comes back as the original row with `duplicate=True`.
    """
    async with conn.transaction():
        originals: dict[tuple[uuid.UUID, uuid.UUID | None, str | None], Message] = {}
        asked = [m for m in batch if m.client_id is not None]
        if asked:
            for row in await conn.fetch(
                _FIND_RESENDS,
                [m.conversation_id for m in asked],
                [m.sender_id for m in asked],
                [m.client_id for m in asked],
            ):
                message = message_from(row)
                originals[_key(message.conversation_id, message.sender_id, message.client_id)] = (
                    message
                )
        fresh: list[NewMessage] = []
        first_in_batch: set[tuple[uuid.UUID, uuid.UUID | None, str | None]] = set()
        for new in batch:
            key = _key(new.conversation_id, new.sender_id, new.client_id)
            if new.client_id is not None and (key in originals or key in first_in_batch):
                continue
            if new.client_id is not None:
                first_in_batch.add(key)
            fresh.append(new)
        rows = (
            await conn.fetch(
                _INSERT_BATCH,
                [m.conversation_id for m in fresh],
                [m.sender_id for m in fresh],
                [m.body for m in fresh],
                [m.client_id for m in fresh],
            )
            if fresh
            else []
        )
    # Rows come back per conversation in seq order, which is the order they were given in.
    inserted: dict[uuid.UUID, list[Message]] = {}
    for row in rows:
        message = message_from(row)
        inserted.setdefault(message.conversation_id, []).append(message)
    cursors = {conversation_id: iter(messages) for conversation_id, messages in inserted.items()}
    results: list[Written] = []
    for new in batch:
        key = _key(new.conversation_id, new.sender_id, new.client_id)
        if new.client_id is not None and key in originals:
            results.append(Written(originals[key], duplicate=True))
            continue
        if new.client_id is not None and key not in first_in_batch:
            # A repeat within this batch: its original is the message inserted for the same key.
            results.append(Written(_same_key(results, key), duplicate=True))
            continue
        message = next(cursors[new.conversation_id])
        if new.client_id is not None:
            first_in_batch.discard(key)
        results.append(Written(message, duplicate=False))
    return results


def _same_key(
    results: list[Written], key: tuple[uuid.UUID, uuid.UUID | None, str | None]
) -> Message:
    for written in results:
        message = written.message
        if _key(message.conversation_id, message.sender_id, message.client_id) == key:
            return message
    raise AssertionError(f"no original for {key}")  # pragma: no cover - guarded by the caller


class MessageStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert_batch(self, batch: list[NewMessage]) -> list[Written]:
        """Insert a batch in one transaction; raises `RejectedMessages` if its data is refused."""

        async def run(pool: asyncpg.Pool) -> list[Written]:
            async with pool.acquire() as conn:
                return await insert_batch(conn, batch)

        try:
            return await self._db.run(run)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
            raise RejectedMessages(str(exc)) from exc

    async def insert_one_by_one(self, batch: list[NewMessage]) -> list[Written]:
        """The unbatched baseline (one transaction per message), kept for the writer benchmark."""
        results: list[Written] = []
        for message in batch:
            results.extend(await self.insert_batch([message]))
        return results

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
