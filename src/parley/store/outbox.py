"""The mail outbox: mail is written in the transaction that caused it; the Mailer delivers it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from parley.store.database import Connection, Database


@dataclass(frozen=True)
class Mail:
    to_address: str
    subject: str
    text_body: str
    html_body: str


@dataclass(frozen=True)
class QueuedMail:
    id: int
    to_address: str
    subject: str
    text_body: str
    html_body: str
    inserted_at: datetime
    attempts: int
    sent_at: datetime | None
    last_error: str | None


_COLUMNS = (
    "id, to_address, subject, text_body, html_body, inserted_at, attempts, sent_at, last_error"
)


async def enqueue(conn: Connection, mail: Mail) -> None:
    """Queue a mail on `conn`, inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO outbox (to_address, subject, text_body, html_body) VALUES ($1, $2, $3, $4)",
        mail.to_address,
        mail.subject,
        mail.text_body,
        mail.html_body,
    )


class OutboxStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def enqueue(self, mail: Mail) -> None:
        await self._db.transaction(lambda conn: enqueue(conn, mail))

    async def claim_due(self, limit: int, lease_seconds: float) -> list[QueuedMail]:
        """Take up to `limit` due mails, pushing their next attempt past a lease.

        The lease (rather than a lock held during SMTP) means a crash mid-delivery only delays the
        mail until the lease expires; it is then retried. SKIP LOCKED lets several nodes share it.
        """
        rows = await self._db.fetch(
            f"""UPDATE outbox SET attempts = attempts + 1,
                       next_attempt_at = now() + make_interval(secs => $2)
                WHERE id IN (SELECT id FROM outbox
                             WHERE sent_at IS NULL AND next_attempt_at <= now()
                             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
                RETURNING {_COLUMNS}""",
            limit,
            lease_seconds,
        )
        return [QueuedMail(**dict(row)) for row in rows]

    async def mark_sent(self, mail_id: int) -> None:
        await self._db.execute(
            "UPDATE outbox SET sent_at = now(), last_error = NULL WHERE id = $1", mail_id
        )

    async def mark_failed(self, mail_id: int, error: str, retry_in_seconds: float) -> None:
        await self._db.execute(
            """UPDATE outbox SET last_error = $2,
                      next_attempt_at = now() + make_interval(secs => $3)
               WHERE id = $1""",
            mail_id,
            error[:1000],
            retry_in_seconds,
        )

    async def get(self, mail_id: int) -> QueuedMail | None:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM outbox WHERE id = $1", mail_id)
        return QueuedMail(**dict(row)) if row else None

    async def pending_count(self) -> int:
        """Mails not delivered yet (due now or waiting for a retry), for metrics and tests."""
        count: int = await self._db.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        return count

    async def recent(self, limit: int) -> list[QueuedMail]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM outbox ORDER BY id DESC LIMIT $1", limit
        )
        return [QueuedMail(**dict(row)) for row in rows]
