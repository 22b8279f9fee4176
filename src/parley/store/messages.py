"""Messages: the writer's group insert, history pages, edits and tombstones."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
import trio

from parley.store.database import Database, Record
from parley.store.pg import PgClosed, PgConnection, PgError

log = logging.getLogger(__name__)


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
    """A batch insert under way (`BatchInserter.start`)."""

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
# costs the writer a single exchange with the server (no BEGIN, no COMMIT, no separate look-up).
# The batch arrives as one JSON array of [conversation_id, sender_id, body, client_id] rows, every
# client_id at most once (see `_fold_repeats`), in the order they were handed over; `ord` is each
# row's position, 1-based. The answer is one JSON array too, a row per message (`_stored_from`):
# one value each way keeps the client's work per batch to one encode and one decode, whichever
# client sends it (`BatchInserter`).
# - `resent`: a row whose (conversation, sender, client_id) is already stored is not inserted; its
#   original comes back with duplicate = true. A lateral subquery with a LIMIT cannot be flattened
#   into a join, so PostgreSQL probes the unique index once per row whatever its statistics say:
#   without the LIMIT, a plan made while messages was young (before autoanalyze) scanned the whole
#   table on every batch, and the server's CPU per batch grew with the table (docs/architecture.md,
#   "Measurements behind the store");
# - seq = the conversation's last_seq + position among its new rows, so numbers have no gaps and no
#   duplicates whatever happened before (restarts, failed batches): the database is the one place
#   the next number comes from, and the conversation rows are locked (in id order, so two writers
#   could never deadlock) while it is taken;
# - the conversations' last_seq and last_message_at move in the same statement;
# - a new row's conversation, sender, body and client_id are the ones sent, so only what the
#   database chose comes back for it (id, seq, inserted_at); a resent one also brings its stored
#   body and edit/delete times.
_INSERT_BATCH = f"""
WITH input AS (
    SELECT (e.m->>0)::uuid AS conversation_id, (e.m->>1)::uuid AS sender_id,
           e.m->>2 AS body, e.m->>3 AS client_id, e.ord
    FROM json_array_elements($1::json) WITH ORDINALITY AS e(m, ord)
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
SELECT json_agg(json_build_array(ord, id, seq, inserted_at, duplicate, body, edited_at, deleted_at))
FROM (
    SELECT n.ord, ins.id, ins.seq, ins.inserted_at, false AS duplicate,
           NULL::text AS body, NULL::timestamptz AS edited_at, NULL::timestamptz AS deleted_at
    FROM inserted ins JOIN numbered n ON n.conversation_id = ins.conversation_id AND n.seq = ins.seq
    UNION ALL
    SELECT ord, id, seq, inserted_at, true, body, edited_at, deleted_at FROM resent
) answer
"""

MessageKey = tuple[uuid.UUID, uuid.UUID | None, str]
"""What makes a message a resend: (conversation, sender, client_id)."""


def _fold_repeats(batch: list[NewMessage]) -> tuple[list[NewMessage], list[tuple[int, bool]]]:
    """The batch with every client_id at most once, and per message: its row among those, and
    whether it repeats an earlier one (the statement sees each client_id once)."""
    unique: list[NewMessage] = []
    first: dict[MessageKey, int] = {}
    slots: list[tuple[int, bool]] = []
    for new in batch:
        if new.client_id is not None:
            key = (new.conversation_id, new.sender_id, new.client_id)
            if key in first:
                slots.append((first[key], True))
                continue
            first[key] = len(unique)
        slots.append((len(unique), False))
        unique.append(new)
    return unique, slots


def _batch_parameter(unique: list[NewMessage]) -> bytes:
    """`_INSERT_BATCH`'s one parameter; raises `RejectedMessages` for text JSON cannot carry."""
    try:
        rows = [[str(m.conversation_id), str(m.sender_id), m.body, m.client_id] for m in unique]
        return orjson.dumps(rows)
    except orjson.JSONEncodeError as exc:  # a lone surrogate in a body
        raise RejectedMessages(str(exc)) from exc


def _written_from(
    answer: bytes | str | None, unique: list[NewMessage], slots: list[tuple[int, bool]]
) -> list[Written]:
    """`_INSERT_BATCH`'s answer as the batch's rows, lined up with the batch `slots` came from."""
    stored: list[Written | None] = [None] * len(unique)
    for ord_, id_, seq, inserted_at, duplicate, body, edited_at, deleted_at in orjson.loads(
        answer or "[]"
    ):
        sent = unique[ord_ - 1]
        message = Message(
            id=id_,
            conversation_id=sent.conversation_id,
            seq=seq,
            sender_id=sent.sender_id,
            body=body if duplicate else sent.body,
            client_id=sent.client_id,
            inserted_at=datetime.fromisoformat(inserted_at),
            edited_at=edited_at and datetime.fromisoformat(edited_at),
            deleted_at=deleted_at and datetime.fromisoformat(deleted_at),
        )
        stored[ord_ - 1] = Written(message, duplicate=duplicate)
    results: list[Written] = []
    for index, repeat in slots:
        written = stored[index]
        assert written is not None, "every row is either inserted or resent"
        results.append(Written(written.message, duplicate=written.duplicate or repeat))
    return results


class MessageStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def batch_inserter(self) -> BatchInserter:
        """The writer's way to insert batches (`BatchInserter`); use it with `async with`."""
        return BatchInserter(self._db)

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


_INSERT_STATEMENT_NAME = "parley_insert_batch"


class BatchInserter:
    """Sends batches to `_INSERT_BATCH` one at a time: `start` sends one, `result()` on what it
    returns waits for its rows. It holds no more than one statement in flight.

    It keeps a connection of its own (`Database.connect_own`, libpq), opened at the first batch
    and again after one failed, and drives it from the trio thread: the writer then never waits
    for the bridge's thread to win the GIL from the sockets (docs/architecture.md, "The writer's
    own connection").
    """

    def __init__(self, database: Database) -> None:
        self._db = database
        self._connection: PgConnection | None = None

    async def __aenter__(self) -> BatchInserter:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def start(self, batch: list[NewMessage]) -> PendingInsert:
        """Send `batch` now; raises `RejectedMessages` for data no statement could carry, or the
        connection's error if it could not be sent."""
        unique, slots = _fold_repeats(batch)
        parameter = _batch_parameter(unique)
        connection = await self._open()
        try:
            await connection.send_prepared(_INSERT_STATEMENT_NAME, [parameter])
        except PgClosed as exc:
            # Closed while idle (a restart, a failover, a terminated backend): nothing of the
            # batch was sent, so it goes to a new connection.
            log.info("the message writer's connection had closed (%s); opening another", exc)
            connection = await self._open()
            await connection.send_prepared(_INSERT_STATEMENT_NAME, [parameter])
        return _Insert(connection, unique, slots, self._db.command_timeout)

    async def _open(self) -> PgConnection:
        """The writer's connection, opened (and the statement prepared) if it has none that
        works."""
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        self._connection = None
        connection = await self._db.connect_own("parley-writer")
        try:
            await connection.prepare(_INSERT_STATEMENT_NAME, _INSERT_BATCH)
        except BaseException:
            connection.close()
            raise
        log.info("the message writer is connected to %s:%d", connection.host, connection.port)
        self._connection = connection
        return connection


class _Insert:
    """A batch sent on the writer's connection."""

    def __init__(
        self,
        connection: PgConnection,
        unique: list[NewMessage],
        slots: list[tuple[int, bool]],
        timeout: float,
    ) -> None:
        self._connection = connection
        self._unique = unique
        self._slots = slots
        self._timeout = timeout

    async def result(self) -> list[Written]:
        """The rows. A caller cancelled (or out of `command_timeout`) first has the statement
        cancelled and waits for the server to confirm (`PgConnection`), so nothing of the batch
        is written afterwards."""
        try:
            with trio.fail_after(self._timeout):
                rows = await self._connection.result()
        except PgError as exc:
            if exc.sqlstate.startswith(("22", "23")):
                raise RejectedMessages(str(exc)) from exc
            raise
        return _written_from(rows[0][0] if rows else None, self._unique, self._slots)
