"""Applications owned by organizations: the SQL (DESIGN §4.2).

A row carries what signing needs (key, current secret, and during a rotation's grace period the
previous one with its expiry) and the per-application settings. Archiving writes the audit log
entry in the same transaction (`store.audit.record`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parley.store.audit import AuditEntry, record

if TYPE_CHECKING:
    from datetime import datetime

    from parley.store.database import Connection, Database, Record


@dataclass(frozen=True)
class Application:
    id: int
    organization_id: uuid.UUID
    organization_slug: str
    name: str
    app_key: str
    app_secret: str
    secret_version: int
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    webhook_url: str | None
    client_events: bool
    max_connections: int | None
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
    webhook_batching: bool = False
    """Several webhook events per request (Pusher's batch webhooks)."""
    webhook_subscription_count: bool = False
    """`subscription_count` webhooks (Pusher's subscription counting)."""


@dataclass(frozen=True)
class NewApplication:
    organization_id: uuid.UUID
    name: str
    app_key: str
    app_secret: str
    webhook_url: str | None
    client_events: bool
    max_connections: int | None
    webhook_batching: bool = False
    webhook_subscription_count: bool = False


@dataclass(frozen=True)
class ApplicationChanges:
    """What a PATCH changes; None leaves a field as it is (`clear_*` sets it to null)."""

    name: str | None = None
    webhook_url: str | None = None
    clear_webhook_url: bool = False
    client_events: bool | None = None
    max_connections: int | None = None
    clear_max_connections: bool = False
    archived: bool | None = None
    webhook_batching: bool | None = None
    webhook_subscription_count: bool | None = None


_SELECT = """SELECT a.id, a.organization_id, o.slug AS organization_slug, a.name, a.app_key,
                    a.app_secret, a.secret_version, a.previous_secret,
                    a.previous_secret_expires_at, a.webhook_url, a.client_events,
                    a.max_connections, a.archived_at, a.created_at, a.updated_at,
                    a.webhook_batching, a.webhook_subscription_count
             FROM applications a JOIN organizations o ON o.id = a.organization_id"""


def _application(row: Record) -> Application:
    return Application(**{name: row[name] for name in Application.__dataclass_fields__})


class ApplicationStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, new: NewApplication) -> Application:
        app_id: int = await self._db.fetchval(
            """INSERT INTO applications (organization_id, name, app_key, app_secret, webhook_url,
                                         client_events, max_connections, webhook_batching,
                                         webhook_subscription_count)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id""",
            new.organization_id,
            new.name,
            new.app_key,
            new.app_secret,
            new.webhook_url,
            new.client_events,
            new.max_connections,
            new.webhook_batching,
            new.webhook_subscription_count,
        )
        created = await self._by("a.id = $1", app_id)
        assert created is not None
        return created

    async def _by(self, condition: str, value: object) -> Application | None:
        row = await self._db.fetchrow(f"{_SELECT} WHERE {condition}", value)
        return None if row is None else _application(row)

    async def get(self, app_key: str) -> Application | None:
        return await self._by("a.app_key = $1", app_key)

    async def get_by_id(self, app_id: int) -> Application | None:
        """By the numeric id (Pusher's `app_id`, the HTTP API's `/apps/{app_id}`)."""
        return await self._by("a.id = $1", app_id)

    async def count_for(self, organization_id: uuid.UUID) -> int:
        count: int = await self._db.fetchval(
            "SELECT count(*) FROM applications WHERE organization_id = $1", organization_id
        )
        return count

    async def of_organization(self, organization_id: uuid.UUID) -> list[Application]:
        """All of an organization's applications (at most its bound), oldest first."""
        rows = await self._db.fetch(
            f"{_SELECT} WHERE a.organization_id = $1 ORDER BY a.id", organization_id
        )
        return [_application(row) for row in rows]

    async def page(self, *, limit: int, before: int | None) -> list[Application]:
        """Every organization's, newest first (site admins)."""
        rows = await self._db.fetch(
            f"{_SELECT} WHERE $2::bigint IS NULL OR a.id < $2 ORDER BY a.id DESC LIMIT $1",
            limit,
            before,
        )
        return [_application(row) for row in rows]

    async def update(
        self, app_key: str, changes: ApplicationChanges, actor_id: uuid.UUID
    ) -> Application | None:
        """Apply `changes`; archiving or restoring is recorded in the audit log with them."""

        async def update(conn: Connection) -> bool:
            row = await conn.fetchrow(
                """UPDATE applications SET
                       name = coalesce($2, name),
                       webhook_url = CASE WHEN $3 THEN NULL ELSE coalesce($4, webhook_url) END,
                       client_events = coalesce($5, client_events),
                       max_connections = CASE WHEN $6 THEN NULL
                                              ELSE coalesce($7, max_connections) END,
                       archived_at = CASE WHEN $8::boolean IS NULL THEN archived_at
                                          WHEN $8 THEN coalesce(archived_at, now())
                                          ELSE NULL END,
                       webhook_batching = coalesce($9, webhook_batching),
                       webhook_subscription_count = coalesce($10, webhook_subscription_count),
                       updated_at = now()
                   WHERE app_key = $1
                   RETURNING id, (archived_at IS NOT NULL) AS archived""",
                app_key,
                changes.name,
                changes.clear_webhook_url,
                changes.webhook_url,
                changes.client_events,
                changes.clear_max_connections,
                changes.max_connections,
                changes.archived,
                changes.webhook_batching,
                changes.webhook_subscription_count,
            )
            if row is None:
                return False
            if changes.archived is not None:
                verb = "archive" if changes.archived else "restore"
                await record(
                    conn, AuditEntry(actor_id, f"application.{verb}", "application", app_key)
                )
            return True

        if not await self._db.transaction(update):
            return None
        return await self.get(app_key)

    async def rotate_secret(
        self, app_key: str, new_secret: str, grace_seconds: int, actor_id: uuid.UUID
    ) -> Application | None:
        """Make `new_secret` current; the current one stays valid for `grace_seconds`."""

        async def rotate(conn: Connection) -> bool:
            status: str = await conn.execute(
                """UPDATE applications SET
                       previous_secret = app_secret,
                       previous_secret_expires_at = now() + make_interval(secs => $3),
                       app_secret = $2,
                       secret_version = secret_version + 1,
                       updated_at = now()
                   WHERE app_key = $1""",
                app_key,
                new_secret,
                grace_seconds,
            )
            if status == "UPDATE 0":
                return False
            await record(
                conn, AuditEntry(actor_id, "application.rotate_secret", "application", app_key)
            )
            return True

        if not await self._db.transaction(rotate):
            return None
        return await self.get(app_key)
