"""The Mailer: delivers the outbox table, so no mail is lost on a crash or a restart.

Mail is written to `outbox` in the same transaction as what caused it (a registration, a reset
request). The Mailer loops: claim up to `mail.batch_size` due mails (`OutboxStore.claim_due` pushes
their next attempt past a lease, so a crash mid-delivery only delays them), deliver each through its
backend, then `mark_sent`, or `mark_failed` with an exponential backoff (30 s, 60 s, 120 s, ...
capped at one hour; attempts are counted in the row). Between rounds it sleeps `mail.poll_seconds`,
or less:
`wake()` (called by the API right after it queues a mail) ends the sleep at once.

Backends:

* `dev`: delivering is marking the mail sent; `GET /dev/mailbox` shows what was "sent".
* `smtp`: stdlib `smtplib` in a worker thread (`trio.to_thread`), with STARTTLS and login from
  `MailSettings`; a connection per batch.

Database errors while claiming are logged and retried after `poll_seconds` (PostgreSQL restarts are
the Store's business, not a reason to crash the tree); any other exception crashes the Mailer and
its supervisor restarts it, which loses nothing since the rows are still in the table.
"""

from __future__ import annotations

import email.utils
import logging
import math
import smtplib
import ssl
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

import trio

from parley.store.database import database_unavailable

if TYPE_CHECKING:
    from parley.config import MailSettings
    from parley.store.outbox import OutboxStore, QueuedMail

__all__ = ["DevBackend", "MailBackend", "Mailer", "SmtpBackend", "backend_for", "build_message"]

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 120.0
DEFAULT_BACKOFF_BASE_SECONDS = 30.0
DEFAULT_BACKOFF_MAX_SECONDS = 3600.0
SMTP_TIMEOUT_SECONDS = 30.0


class MailBackend(Protocol):
    """Delivers a batch of mails; returns, per mail id, None (delivered) or an error message."""

    async def deliver(self, mails: list[QueuedMail]) -> dict[int, str | None]: ...


class DevBackend:
    """Development delivery: nothing leaves the machine; the mailbox page shows the outbox."""

    async def deliver(self, mails: list[QueuedMail]) -> dict[int, str | None]:
        for mail in mails:
            log.info("dev mail #%d to %s: %s", mail.id, mail.to_address, mail.subject)
        return {mail.id: None for mail in mails}


def build_message(mail: QueuedMail, from_address: str) -> EmailMessage:
    """A multipart/alternative message (text first, HTML second) with safe headers."""
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = email.utils.format_datetime(mail.inserted_at)
    domain = email.utils.parseaddr(from_address)[1].rpartition("@")[2] or "parley.local"
    message["Message-ID"] = f"<outbox-{mail.id}@{domain}>"
    message.set_content(mail.text_body)
    message.add_alternative(mail.html_body, subtype="html")
    return message


class SmtpBackend:
    """SMTP through the stdlib, in a worker thread; one connection per batch."""

    def __init__(self, settings: MailSettings, *, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        self._settings = settings
        self._timeout = timeout

    async def deliver(self, mails: list[QueuedMail]) -> dict[int, str | None]:
        return await trio.to_thread.run_sync(self._deliver_sync, mails, abandon_on_cancel=True)

    def _deliver_sync(self, mails: list[QueuedMail]) -> dict[int, str | None]:
        settings = self._settings
        results: dict[int, str | None] = {}
        try:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=self._timeout)
        except (OSError, smtplib.SMTPException) as exc:
            return {mail.id: f"connect: {exc}" for mail in mails}
        try:
            with smtp:
                if settings.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if settings.smtp_username:
                    smtp.login(settings.smtp_username, str(settings.smtp_password or ""))
                for mail in mails:
                    try:
                        smtp.send_message(build_message(mail, settings.from_address))
                        results[mail.id] = None
                    except smtplib.SMTPRecipientsRefused as exc:
                        results[mail.id] = f"refused: {exc.recipients}"
                    except smtplib.SMTPResponseException as exc:
                        results[mail.id] = f"{exc.smtp_code}: {exc.smtp_error!r}"
        except (OSError, smtplib.SMTPException) as exc:
            for mail in mails:
                results.setdefault(mail.id, f"smtp: {exc}")
        return results


def backend_for(settings: MailSettings) -> MailBackend:
    if settings.backend == "smtp":
        return SmtpBackend(settings)
    return DevBackend()


class Mailer:
    """Delivers the outbox; run it under a supervisor with `run` (see the module docstring).

    `Mailer(outbox, settings.mail)` is all the service needs; `backend`, `lease_seconds` and the
    backoff bounds are for tests and tuning.
    """

    def __init__(
        self,
        outbox: OutboxStore,
        settings: MailSettings,
        *,
        backend: MailBackend | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        backoff_base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS,
        backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS,
    ) -> None:
        self._outbox = outbox
        self._settings = settings
        self._backend = backend if backend is not None else backend_for(settings)
        self._lease = lease_seconds
        self._backoff_base = backoff_base_seconds
        self._backoff_max = backoff_max_seconds
        self._wakeup = trio.Event()
        self.delivered = 0
        self.failed = 0

    def wake(self) -> None:
        """A mail was just queued: deliver now rather than at the next poll."""
        self._wakeup.set()

    def backoff(self, attempts: int) -> float:
        """Seconds before retrying a mail that failed its `attempts`-th attempt."""
        exponent = min(max(attempts - 1, 0), 30)
        return float(min(self._backoff_base * 2**exponent, self._backoff_max))

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self._settings.backend,
            "delivered": self.delivered,
            "failed": self.failed,
        }

    async def run(self, *, task_status: trio.TaskStatus[Mailer] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        while True:
            # A fresh event before each round: a wake() during delivery triggers another round.
            self._wakeup = trio.Event()
            claimed = await self.deliver_due()
            if claimed >= self._settings.batch_size:
                await trio.lowlevel.checkpoint()
                continue  # more may be due: no sleep between full batches
            await self._sleep()

    async def deliver_due(self) -> int:
        """One round: claim a batch, deliver it, record the outcomes; returns the batch size.

        A database that cannot answer skips the round (it is retried at the next poll) rather
        than crashing the mailer, which would restart everything after it in the tree (the HTTP
        server). A mail sent whose outcome could not be recorded is sent again once its lease
        runs out: delivery is at least once.
        """
        try:
            mails = await self._outbox.claim_due(self._settings.batch_size, self._lease)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            log.warning("mailer: cannot claim mail (%r); retrying later", exc)
            return 0
        if not mails:
            return 0
        results = await self._backend.deliver(mails)
        try:
            for mail in mails:
                await self._record(mail, results.get(mail.id, "not attempted"))
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            log.warning("mailer: cannot record deliveries (%r); their leases will expire", exc)
            return 0
        return len(mails)

    async def _record(self, mail: QueuedMail, error: str | None) -> None:
        if error is None:
            await self._outbox.mark_sent(mail.id)
            self.delivered += 1
            return
        delay = self.backoff(mail.attempts)
        log.warning(
            "mailer: mail #%d to %s failed (attempt %d, retry in %.0fs): %s",
            mail.id,
            mail.to_address,
            mail.attempts,
            delay,
            error,
        )
        await self._outbox.mark_failed(mail.id, error, delay)
        self.failed += 1

    async def _sleep(self) -> None:
        poll = self._settings.poll_seconds
        with trio.move_on_after(poll if poll > 0 else math.inf):
            await self._wakeup.wait()
