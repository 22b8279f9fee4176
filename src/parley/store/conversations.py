"""Conversations and their members: creation (direct pairs are unique), listing, membership,
reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from parley.store.database import Connection, Database, Record
from parley.store.messages import Message, message_from


@dataclass(frozen=True)
class Member:
    user_id: uuid.UUID
    role: str
    joined_at: datetime
    last_read_seq: int
    muted: bool


@dataclass(frozen=True)
class Conversation:
    id: uuid.UUID
    kind: str
    title: str | None
    created_by: uuid.UUID | None
    last_seq: int
    last_message_at: datetime | None
    inserted_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ConversationSummary:
    """A row of "my conversations": the conversation, its newest message and my unread count."""

    conversation: Conversation
    last_message: Message | None
    unread_count: int
    activity_at: datetime


_COLUMNS = "id, kind, title, created_by, last_seq, last_message_at, inserted_at, updated_at"
_C_COLUMNS = ", ".join(f"c.{column.strip()}" for column in _COLUMNS.split(","))


def _conversation(row: Record) -> Conversation:
    return Conversation(**{field: row[field] for field in Conversation.__dataclass_fields__})


def _member(row: Record) -> Member:
    return Member(**{field: row[field] for field in Member.__dataclass_fields__})


class UnknownUsers(Exception):
    """Some of the invited user ids do not exist (or are banned)."""

    def __init__(self, user_ids: list[uuid.UUID]) -> None:
        super().__init__(f"unknown users: {', '.join(map(str, user_ids))}")
        self.user_ids = user_ids


async def _check_users(conn: Connection, user_ids: list[uuid.UUID]) -> None:
    found = {
        row["id"]
        for row in await conn.fetch(
            "SELECT id FROM users WHERE id = ANY($1::uuid[]) AND banned_at IS NULL", user_ids
        )
    }
    missing = [user_id for user_id in user_ids if user_id not in found]
    if missing:
        raise UnknownUsers(missing)


class ConversationStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def open_direct(
        self, user_id: uuid.UUID, other_id: uuid.UUID
    ) -> tuple[Conversation, bool]:
        """The 1:1 conversation of a pair, created by whoever comes first; (conversation,
        created)."""
        low, high = sorted((user_id, other_id))

        async def open_pair(conn: Connection) -> tuple[Conversation, bool]:
            await _check_users(conn, [other_id])
            row = await conn.fetchrow(
                f"""INSERT INTO conversations (kind, created_by, direct_low, direct_high)
                    VALUES ('direct', $1, $2, $3)
                    ON CONFLICT (direct_low, direct_high) WHERE kind = 'direct' DO NOTHING
                    RETURNING {_COLUMNS}""",
                user_id,
                low,
                high,
            )
            if row is not None:
                await conn.execute(
                    """INSERT INTO members (conversation_id, user_id, role)
                       SELECT $1, unnest($2::uuid[]), 'owner'""",
                    row["id"],
                    [low, high],
                )
                return _conversation(row), True
            existing = await conn.fetchrow(
                f"""SELECT {_COLUMNS} FROM conversations
                    WHERE kind = 'direct' AND direct_low = $1 AND direct_high = $2""",
                low,
                high,
            )
            assert existing is not None
            return _conversation(existing), False

        return await self._db.transaction(open_pair)

    async def create_group(
        self, creator_id: uuid.UUID, title: str | None, member_ids: list[uuid.UUID]
    ) -> Conversation:
        invited = [m for m in dict.fromkeys(member_ids) if m != creator_id]

        async def create(conn: Connection) -> Conversation:
            await _check_users(conn, invited)
            row = await conn.fetchrow(
                f"""INSERT INTO conversations (kind, title, created_by) VALUES ('group', $1, $2)
                    RETURNING {_COLUMNS}""",
                title,
                creator_id,
            )
            assert row is not None
            await conn.execute(
                """INSERT INTO members (conversation_id, user_id, role)
                   SELECT $1, u, CASE WHEN u = $2 THEN 'owner' ELSE 'member' END
                   FROM unnest($3::uuid[]) AS u""",
                row["id"],
                creator_id,
                [creator_id, *invited],
            )
            return _conversation(row)

        return await self._db.transaction(create)

    async def get(self, conversation_id: uuid.UUID) -> Conversation | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM conversations WHERE id = $1", conversation_id
        )
        return _conversation(row) if row else None

    async def get_for_member(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID
    ) -> tuple[Conversation, list[Member]] | None:
        """The conversation and its members, only if `user_id` is one of them."""
        rows = await self._db.fetch(
            f"""SELECT {_C_COLUMNS}, m.user_id, m.role, m.joined_at, m.last_read_seq, m.muted
                FROM conversations c JOIN members m ON m.conversation_id = c.id
                WHERE c.id = $1 ORDER BY m.joined_at, m.user_id""",
            conversation_id,
        )
        members = [_member(row) for row in rows]
        if not any(member.user_id == user_id for member in members):
            return None
        return _conversation(rows[0]), members

    async def members(self, conversation_id: uuid.UUID) -> list[Member]:
        rows = await self._db.fetch(
            """SELECT user_id, role, joined_at, last_read_seq, muted FROM members
               WHERE conversation_id = $1 ORDER BY joined_at, user_id""",
            conversation_id,
        )
        return [_member(row) for row in rows]

    async def is_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        return bool(
            await self._db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2)",
                conversation_id,
                user_id,
            )
        )

    async def add_members(
        self, conversation_id: uuid.UUID, user_ids: list[uuid.UUID]
    ) -> list[uuid.UUID]:
        """Make `user_ids` members (raises `UnknownUsers`); returns those who were not yet."""

        async def add(conn: Connection) -> list[uuid.UUID]:
            await _check_users(conn, user_ids)
            rows = await conn.fetch(
                """INSERT INTO members (conversation_id, user_id) SELECT $1, unnest($2::uuid[])
                   ON CONFLICT DO NOTHING
                   RETURNING user_id""",
                conversation_id,
                user_ids,
            )
            return [row["user_id"] for row in rows]

        return await self._db.transaction(add)

    async def remove_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        status = await self._db.execute(
            "DELETE FROM members WHERE conversation_id = $1 AND user_id = $2",
            conversation_id,
            user_id,
        )
        return status == "DELETE 1"

    async def mark_read(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int
    ) -> int | None:
        """Move the read marker forward (never back, never past the last message)."""
        marker: int | None = await self._db.fetchval(
            """UPDATE members m SET last_read_seq = GREATEST(m.last_read_seq, LEAST($3, c.last_seq))
               FROM conversations c
               WHERE m.conversation_id = $1 AND m.user_id = $2 AND c.id = m.conversation_id
               RETURNING m.last_read_seq""",
            conversation_id,
            user_id,
            seq,
        )
        return marker

    async def list_for_user(
        self,
        user_id: uuid.UUID,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[ConversationSummary]:
        """Newest activity first, keyset-paginated on (activity, id)."""
        rows = await self._db.fetch(
            f"""SELECT {_C_COLUMNS}, COALESCE(c.last_message_at, c.inserted_at) AS activity_at,
                       (SELECT count(*) FROM messages x
                        WHERE x.conversation_id = c.id AND x.seq > m.last_read_seq
                              AND x.deleted_at IS NULL AND x.sender_id IS DISTINCT FROM $1)
                           AS unread_count,
                       lm.id AS lm_id, lm.seq AS lm_seq, lm.sender_id AS lm_sender_id,
                       lm.body AS lm_body, lm.client_id AS lm_client_id,
                       lm.inserted_at AS lm_inserted_at, lm.edited_at AS lm_edited_at,
                       lm.deleted_at AS lm_deleted_at
                FROM members m
                JOIN conversations c ON c.id = m.conversation_id
                LEFT JOIN messages lm ON lm.conversation_id = c.id AND lm.seq = c.last_seq
                WHERE m.user_id = $1
                  AND ($3::timestamptz IS NULL
                       OR (COALESCE(c.last_message_at, c.inserted_at), c.id) < ($3, $4::uuid))
                ORDER BY activity_at DESC, c.id DESC
                LIMIT $2""",
            user_id,
            limit,
            before[0] if before else None,
            before[1] if before else None,
        )
        summaries = []
        for row in rows:
            last = None
            if row["lm_id"] is not None:
                last = message_from(
                    {
                        "id": row["lm_id"],
                        "conversation_id": row["id"],
                        "seq": row["lm_seq"],
                        "sender_id": row["lm_sender_id"],
                        "body": row["lm_body"],
                        "client_id": row["lm_client_id"],
                        "inserted_at": row["lm_inserted_at"],
                        "edited_at": row["lm_edited_at"],
                        "deleted_at": row["lm_deleted_at"],
                    }
                )
            summaries.append(
                ConversationSummary(
                    _conversation(row), last, int(row["unread_count"]), row["activity_at"]
                )
            )
        return summaries

    async def conversation_ids_of(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self._db.fetch(
            "SELECT conversation_id FROM members WHERE user_id = $1", user_id
        )
        return [row["conversation_id"] for row in rows]
