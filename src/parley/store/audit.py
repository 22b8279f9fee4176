"""The audit log: every moderation and admin action (hide, unhide, delete, ban, role change,
announcement), with its actor, target, reason and time.

`record` writes an entry on a connection that is already in a transaction, so that an entry exists
exactly when the change it records was committed (the outbox's pattern); `AuditStore.add` is for
actions that are no database write of their own (an announcement).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from parley.store.database import Connection, Database, Record


@dataclass(frozen=True)
class AuditEntry:
    """An action to record. `action` is `<target type>.<verb>` (`listing.hide`, `user.ban`)."""

    actor_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: str
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    """A recorded action, with the actor's username (None once the account is gone)."""

    id: uuid.UUID
    actor_id: uuid.UUID | None
    actor_username: str | None
    action: str
    target_type: str
    target_id: str
    reason: str | None
    details: dict[str, Any]
    at: datetime


_INSERT = """INSERT INTO audit_log (actor_id, action, target_type, target_id, reason, details)
             VALUES ($1, $2, $3, $4, $5, $6)"""


async def record(conn: Connection, entry: AuditEntry) -> None:
    """Write `entry` on `conn`, inside the caller's transaction."""
    await conn.execute(
        _INSERT,
        entry.actor_id,
        entry.action,
        entry.target_type,
        entry.target_id,
        entry.reason,
        entry.details,
    )


def _record(row: Record) -> AuditRecord:
    return AuditRecord(**{name: row[name] for name in AuditRecord.__dataclass_fields__})


class AuditStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(self, entry: AuditEntry) -> None:
        """Record an action that changed nothing in the database itself."""
        await self._db.execute(
            _INSERT,
            entry.actor_id,
            entry.action,
            entry.target_type,
            entry.target_id,
            entry.reason,
            entry.details,
        )

    async def page(
        self, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> list[AuditRecord]:
        """Newest first, keyset-paginated on (at, id)."""
        rows = await self._db.fetch(
            """SELECT a.id, a.actor_id, u.username AS actor_username, a.action, a.target_type,
                      a.target_id, a.reason, a.details, a.at
               FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
               WHERE $2::timestamptz IS NULL OR (a.at, a.id) < ($2, $3::uuid)
               ORDER BY a.at DESC, a.id DESC LIMIT $1""",
            limit,
            before[0] if before else None,
            before[1] if before else None,
        )
        return [_record(row) for row in rows]
