"""Messages: the writer's group insert, history pages, edits and tombstones."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from parley.store.database import Database, Record


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


# One statement, one round trip, for a whole batch from any number of conversations:
# - `input` keeps the order messages were handed over (ordinality);
# - `first_of` keeps the first of repeated (conversation, sender, client_id) in the batch;
# - `fresh` drops messages whose client_id is already stored (resends);
# - seq = the conversation's last_seq + position among its fresh messages, so numbers have no gaps
#   and no duplicates whatever happened before (restarts, failed batches): the database is the
#   one place the next number comes from, and the conversation row is locked while it is taken;
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
first_of AS (
    SELECT DISTINCT ON (conversation_id, sender_id, COALESCE(client_id, ord::text)) *
    FROM input ORDER BY conversation_id, sender_id, COALESCE(client_id, ord::text), ord
),
fresh AS (
    SELECT f.* FROM first_of f
    WHERE f.client_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM messages m
        WHERE m.conversation_id = f.conversation_id AND m.sender_id = f.sender_id
              AND m.client_id = f.client_id)
),
numbered AS (
    SELECT f.*, l.last_seq + row_number() OVER (PARTITION BY f.conversation_id ORDER BY f.ord) AS seq
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
SELECT {_COLUMNS}, false AS duplicate FROM inserted
"""

_FIND_RESENDS = f"""
SELECT DISTINCT ON (m.conversation_id, m.sender_id, m.client_id) {_M_COLUMNS}
FROM messages m
JOIN unnest($1::uuid[], $2::uuid[], $3::text[]) AS t(conversation_id, sender_id, client_id)
  ON m.conversation_id = t.conversation_id AND m.sender_id = t.sender_id
     AND m.client_id = t.client_id
"""


def _key(conversation_id: uuid.UUID, sender_id: uuid.UUID | None, client_id: str | None) -> tuple[
    uuid.UUID, uuid.UUID | None, str | None
]:
    return (conversation_id, sender_id, client_id)


async def insert_batch(conn: asyncpg.Connection, batch: list[NewMessage]) -> list[Written]:
    """Insert a batch in one transaction (asyncio side); results line up with `batch`.

    Messages whose client_id was already stored (or repeated within the batch) come back as the
    original row with `duplicate=True`.
    """
    conversation_ids = [m.conversation_id for m in batch]
    sender_ids = [m.sender_id for m in batch]
    client_ids = [m.client_id for m in batch]
    async with conn.transaction():
        # Resends are looked up first, inside the same transaction, so the answer is consistent
        # with what the insert below skips.
        with_client_id = [m for m in batch if m.client_id is not None]
        existing: dict[tuple[uuid.UUID, uuid.UUID | None, str | None], Message] = {}
        if with_client_id:
            for row in await conn.fetch(
                _FIND_RESENDS,
                [m.conversation_id for m in with_client_id],
                [m.sender_id for m in with_client_id],
                [m.client_id for m in with_client_id],
            ):
                message = message_from(row)
                existing[_key(message.conversation_id, message.sender_id, message.client_id)] = (
                    message
                )
        rows = await conn.fetch(
            _INSERT_BATCH, conversation_ids, sender_ids, [m.body for m in batch], client_ids
        )
    inserted = [message_from(row) for row in rows]
    results: list[Written] = []
    fresh = iter(inserted)
    seen_in_batch: dict[tuple[uuid.UUID, uuid.UUID | None, str | None], Message] = {}
    for new in batch:
        key = _key(new.conversation_id, new.sender_id, new.client_id)
        if new.client_id is not None and key in existing:
            results.append(Written(existing[key], duplicate=True))
        elif new.client_id is not None and key in seen_in_batch:
            results.append(Written(seen_in_batch[key], duplicate=True))
        else:
            message = next(fresh)
            if new.client_id is not None:
                seen_in_batch[key] = message
            results.append(Written(message, duplicate=False))
    return results


class MessageStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert_batch(self, batch: list[NewMessage]) -> list[Written]:
        async def run(pool: asyncpg.Pool) -> list[Written]:
            async with pool.acquire() as conn:
                return await insert_batch(conn, batch)

        return await self._db.run(run)

    async def insert_one_by_one(self, batch: list[NewMessage]) -> list[Written]:
        """The unbatched baseline (one transaction per message), kept for the writer benchmark."""
        results: list[Written] = []
        for message in batch:
            results.extend(await self.insert_batch([message]))
        return results

    async def before(self, conversation_id: uuid.UUID, *, limit: int, before_seq: int | None) -> (
        list[Message]
    ):
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

    async def after(self, conversation_id: uuid.UUID, *, after_seq: int, limit: int) -> (
        list[Message]
    ):
        """Catch-up, oldest first: messages with seq > `after_seq`."""
        rows = await self._db.fetch(
            f"""SELECT {_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2
                ORDER BY seq LIMIT $3""",
            conversation_id,
            after_seq,
            limit,
        )
        return [message_from(row) for row in rows]

    async def recent_client_ids(
        self, conversation_id: uuid.UUID, limit: int
    ) -> list[Message]:
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
