"""The webhook outbox: Pusher webhook events waiting for delivery, and what became of them.

Rows are written in batches by the webhook recorder (`record`) and delivered by the webhook
deliverer of any node. `claim_due` takes due rows with FOR UPDATE SKIP LOCKED and leases them
(their `next_attempt_at` moves past the lease), so several nodes deliver from one table and
never send one row twice at once; a node that dies mid-request only delays its rows until the
lease ends. Each outcome is one statement over the rows of one request: `mark_delivered`,
`mark_failed` (with the retry's delay), `mark_given_up`, or `release` for rows claimed but not
attempted (their attempt is not counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from datetime import datetime

    from parley.store.database import Database, Record


@dataclass(frozen=True)
class NewWebhookEvent:
    app_id: int
    event: dict[str, Any]
    """Pusher's event object (`{"name", "channel", ...}`)."""


@dataclass(frozen=True)
class DueWebhook:
    """A claimed row with what sending it needs from its application."""

    id: int
    app_id: int
    event: dict[str, Any]
    inserted_at: datetime
    attempts: int
    """Counting the attempt about to be made."""
    app_key: str
    app_secret: str
    webhook_url: str | None
    batching: bool
    archived: bool


@dataclass(frozen=True)
class WebhookRow:
    """A row as the debug view shows it."""

    id: int
    app_id: int
    event: dict[str, Any]
    inserted_at: datetime
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    given_up_at: datetime | None
    last_error: str | None

    @property
    def state(self) -> Literal["delivered", "given_up", "pending"]:
        if self.delivered_at is not None:
            return "delivered"
        return "given_up" if self.given_up_at is not None else "pending"


_ROW = (
    "id, app_id, event, inserted_at, attempts, next_attempt_at, delivered_at, given_up_at, "
    "last_error"
)
ERROR_MAX_CHARS = 1000


class WebhookStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def record(self, events: Sequence[NewWebhookEvent]) -> None:
        """Write `events` in one statement (one round trip however many)."""
        if not events:
            return
        await self._db.execute(
            """INSERT INTO webhook_outbox (app_id, event)
               SELECT (e->>'app_id')::bigint, e->'event'
               FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n""",
            [{"app_id": e.app_id, "event": e.event} for e in events],
        )

    async def claim_due(
        self, limit: int, lease_seconds: float, busy_apps: Sequence[int]
    ) -> list[DueWebhook]:
        """Take up to `limit` due rows, oldest first, of applications not in `busy_apps` (those
        this node is sending to already), and lease them for `lease_seconds`."""
        rows = await self._db.fetch(
            """WITH claimed AS (
                   UPDATE webhook_outbox SET attempts = attempts + 1,
                          next_attempt_at = now() + make_interval(secs => $2)
                   WHERE id IN (SELECT id FROM webhook_outbox
                                WHERE delivered_at IS NULL AND given_up_at IS NULL
                                  AND next_attempt_at <= now() AND app_id <> ALL($3::bigint[])
                                ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
                   RETURNING id, app_id, event, inserted_at, attempts)
               SELECT c.id, c.app_id, c.event, c.inserted_at, c.attempts, a.app_key,
                      a.app_secret, a.webhook_url, a.webhook_batching AS batching,
                      a.archived_at IS NOT NULL AS archived
               FROM claimed c JOIN applications a ON a.id = c.app_id
               ORDER BY c.id""",
            limit,
            lease_seconds,
            list(busy_apps),
        )
        return [DueWebhook(**dict(row)) for row in rows]

    async def mark_delivered(self, ids: Sequence[int]) -> None:
        await self._db.execute(
            """UPDATE webhook_outbox SET delivered_at = now(), last_error = NULL
               WHERE id = ANY($1::bigint[])""",
            list(ids),
        )

    async def mark_failed(self, ids: Sequence[int], error: str, retry_in_seconds: float) -> None:
        await self._db.execute(
            """UPDATE webhook_outbox SET last_error = $2,
                      next_attempt_at = now() + make_interval(secs => $3)
               WHERE id = ANY($1::bigint[])""",
            list(ids),
            error[:ERROR_MAX_CHARS],
            retry_in_seconds,
        )

    async def mark_given_up(self, ids: Sequence[int], error: str) -> None:
        await self._db.execute(
            """UPDATE webhook_outbox SET given_up_at = now(), last_error = $2
               WHERE id = ANY($1::bigint[])""",
            list(ids),
            error[:ERROR_MAX_CHARS],
        )

    async def release(self, ids: Sequence[int]) -> None:
        """Give back rows claimed but not attempted: due at once, the attempt not counted."""
        await self._db.execute(
            """UPDATE webhook_outbox SET attempts = attempts - 1, next_attempt_at = now()
               WHERE id = ANY($1::bigint[])""",
            list(ids),
        )

    async def delete_finished(self, older_than_seconds: float) -> int:
        """Delete delivered and given-up rows recorded more than `older_than_seconds` ago."""
        status: str = await self._db.execute(
            """DELETE FROM webhook_outbox
               WHERE (delivered_at IS NOT NULL OR given_up_at IS NOT NULL)
                 AND inserted_at < now() - make_interval(secs => $1)""",
            older_than_seconds,
        )
        return int(status.rpartition(" ")[2] or 0)

    async def counts(self) -> dict[str, int]:
        """Rows by state (`pending`, `delivered`, `given_up`), for the debug view."""
        row = await self._db.fetchrow(
            """SELECT count(*) FILTER (WHERE delivered_at IS NULL AND given_up_at IS NULL)
                          AS pending,
                      count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered,
                      count(*) FILTER (WHERE given_up_at IS NOT NULL) AS given_up
               FROM webhook_outbox"""
        )
        assert row is not None
        return {
            "pending": row["pending"],
            "delivered": row["delivered"],
            "given_up": row["given_up"],
        }

    async def recent(self, limit: int, app_id: int | None = None) -> list[WebhookRow]:
        """The newest rows (of one application when `app_id` is given)."""
        rows = await self._db.fetch(
            f"""SELECT {_ROW} FROM webhook_outbox
                WHERE $2::bigint IS NULL OR app_id = $2 ORDER BY id DESC LIMIT $1""",
            limit,
            app_id,
        )
        return [_row(row) for row in rows]


def _row(row: Record) -> WebhookRow:
    return WebhookRow(**{name: row[name] for name in WebhookRow.__dataclass_fields__})
