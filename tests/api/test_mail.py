"""Mail: the templates, the Mailer delivering the outbox (dev backend and real SMTP), and the
development mailbox page."""

from __future__ import annotations

import base64
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
import trio

from parley.accounts.mail import (
    MailLinks,
    confirm_mail,
    email_change_mail,
    password_reset_mail,
    welcome_mail,
)
from parley.actors.mailer import DevBackend, Mailer, SmtpBackend
from parley.config import MailSettings, Settings
from parley.store.outbox import Mail
from tests.api.account_helpers import mails_to, server_with
from tests.api.conftest import register
from tests.conftest import make_settings
from tests.polling import eventually

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from parley.service import RunningServer
    from parley.store.outbox import OutboxStore

LINKS = MailLinks(
    "https://chat.example.org/",
    confirm_template="{public_url}/confirm?token={token}",
    reset_template="{public_url}/reset?token={token}",
)
HOSTILE = "<script>alert('x')</script>&"


async def all_sent(outbox: OutboxStore) -> bool:
    return await outbox.pending_count() == 0


async def is_sent(outbox: OutboxStore, mail_id: int) -> bool:
    mail = await outbox.get(mail_id)
    return mail is not None and mail.sent_at is not None


# --- templates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: confirm_mail("a@example.com", HOSTILE, "tok&<>", links=LINKS, ttl_seconds=172_800),
        lambda: password_reset_mail(
            "a@example.com", HOSTILE, "tok&<>", links=LINKS, ttl_seconds=3600
        ),
        lambda: email_change_mail(
            "a@example.com", HOSTILE, "tok&<>", links=LINKS, ttl_seconds=7200
        ),
        lambda: welcome_mail(
            "a@example.com",
            HOSTILE,
            "Pass<word>",
            "tok&<>",
            links=LINKS,
            ttl_seconds=3600,
            created_by=HOSTILE,
        ),
    ],
)
def test_templates_have_text_and_escaped_html(build: object) -> None:
    mail: Mail = build()  # type: ignore[operator]
    assert mail.to_address == "a@example.com"
    assert "Parley" in mail.subject
    assert HOSTILE in mail.text_body  # plain text is plain
    assert "<script>" not in mail.html_body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;" in mail.html_body
    assert "https://chat.example.org/" in mail.text_body
    assert "token=tok%26%3C%3E" in mail.text_body  # the link's query is URL-encoded
    assert "Token: tok&<>" in mail.text_body
    assert mail.html_body.startswith("<!doctype html>")


def test_ttl_is_spelled_in_hours() -> None:
    assert (
        "1 hour"
        in password_reset_mail("a@b.org", "u", "t", links=LINKS, ttl_seconds=3600).text_body
    )
    assert (
        "48 hours" in confirm_mail("a@b.org", "u", "t", links=LINKS, ttl_seconds=172_800).text_body
    )


# --- the Mailer with the dev backend -------------------------------------------------------------


def mail_settings(**change: object) -> MailSettings:
    values: dict[str, object] = {"poll_seconds": 60.0, "batch_size": 5, **change}
    return MailSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The service's own Mailer (in the supervision tree) polls only hourly here, so the Mailers
    these tests build do not race it; it still runs when woken."""
    return make_settings(tmp_path, database_url, mail={"poll_seconds": 3600})


async def test_the_service_mailer_delivers_queued_mail_at_once_when_woken(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    mailer = server.runtime.mailer
    before = mailer.delivered
    account = await register(client)

    async def sent() -> bool:
        return bool((await mails_to(client, account.email))[0]["sent_at"])

    await eventually(sent, 60)  # far below poll_seconds: the registration woke the mailer
    assert mailer.delivered == before + 1
    assert await server.context.stores.outbox.pending_count() == 0


async def test_mailer_drains_more_than_one_batch_without_sleeping(
    server: RunningServer, nursery: trio.Nursery
) -> None:
    outbox = server.context.stores.outbox
    for n in range(12):
        await outbox.enqueue(Mail(f"u{n}@example.com", "s", "t", "<p>h</p>"))
    mailer = Mailer(outbox, mail_settings(batch_size=5))
    await nursery.start(mailer.run)
    await eventually(lambda: all_sent(outbox), 30)  # below poll_seconds: no sleep between batches
    assert mailer.delivered + server.runtime.mailer.delivered == 12


async def test_mail_claimed_by_a_crashed_mailer_is_delivered_after_the_lease(
    server: RunningServer, nursery: trio.Nursery
) -> None:
    outbox = server.context.stores.outbox
    await outbox.enqueue(Mail("held@example.com", "s", "t", "h"))
    (held,) = await outbox.claim_due(10, lease_seconds=3600)  # ... and the process dies here
    await outbox.enqueue(Mail("lost@example.com", "s", "t", "h"))
    (claimed,) = await outbox.claim_due(10, lease_seconds=0.5)  # ... and here
    mailer = Mailer(outbox, mail_settings(poll_seconds=0.1), backend=DevBackend())
    await nursery.start(mailer.run)
    await eventually(lambda: is_sent(outbox, claimed.id), 30)
    delivered = await outbox.get(claimed.id)
    assert delivered is not None
    assert delivered.attempts == 2
    # The round that took the expired one passed this one by: its lease outlives the test.
    still_leased = await outbox.get(held.id)
    assert still_leased is not None
    assert (still_leased.sent_at, still_leased.attempts) == (None, 1)


def test_backoff_is_exponential_and_capped() -> None:
    mailer = Mailer(None, mail_settings(), backoff_base_seconds=30, backoff_max_seconds=3600)  # type: ignore[arg-type]
    assert [mailer.backoff(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert mailer.backoff(50) == 3600


# --- the Mailer with SMTP, against a small real SMTP server ---------------------------------------


@dataclass
class SmtpServer:
    """A minimal SMTP server (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT)."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle(self, stream: trio.SocketStream) -> None:
        buffer = b""

        async def line() -> bytes | None:
            nonlocal buffer
            while b"\r\n" not in buffer:
                data = await stream.receive_some(65536)
                if not data:
                    return None
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n")
            return head

        await stream.send_all(b"220 test ESMTP\r\n")
        while (command := await line()) is not None:
            verb = command.split(b" ", 1)[0].upper()
            if verb in (b"EHLO", b"HELO"):
                await stream.send_all(b"250-test\r\n250 AUTH PLAIN\r\n")
            elif verb == b"AUTH":
                _, user, password = base64.b64decode(command.split()[2]).split(b"\0")
                self.logins.append((user.decode(), password.decode()))
                await stream.send_all(b"235 ok\r\n")
            elif verb == b"RCPT" and any(r.encode() in command for r in self.refuse):
                await stream.send_all(b"550 no such mailbox\r\n")
            elif verb == b"DATA":
                await stream.send_all(b"354 go ahead\r\n")
                lines = []
                while (data_line := await line()) != b".":
                    assert data_line is not None
                    lines.append(data_line[1:] if data_line.startswith(b"..") else data_line)
                raw = b"\r\n".join(lines)
                parsed = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                self.messages.append(parsed)
                await stream.send_all(b"250 queued\r\n")
            elif verb == b"QUIT":
                await stream.send_all(b"221 bye\r\n")
                return
            else:
                await stream.send_all(b"250 ok\r\n")


@pytest.fixture
async def smtp_server(nursery: trio.Nursery) -> SmtpServer:
    server = SmtpServer()
    listeners = await nursery.start(trio.serve_tcp, server.handle, 0)
    server.port = listeners[0].socket.getsockname()[1]
    return server


async def test_smtp_backend_sends_multipart_mail_with_login(
    server: RunningServer, smtp_server: SmtpServer, nursery: trio.Nursery
) -> None:
    outbox = server.context.stores.outbox
    await outbox.enqueue(Mail("ok@example.com", "Hello <you>", "text body", "<p>html body</p>"))
    await outbox.enqueue(Mail("refused@example.com", "Hello", "t", "<p>h</p>"))
    settings = mail_settings(
        backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_username="mailer",
        smtp_password="s3cret",
        from_address="Parley <no-reply@parley.test>",
    )
    smtp_server.refuse.add("refused@example.com")
    mailer = Mailer(outbox, settings)
    assert isinstance(mailer._backend, SmtpBackend)
    await nursery.start(mailer.run)

    async def both_attempted() -> bool:
        return mailer.delivered + mailer.failed == 2

    await eventually(both_attempted, 30)
    (message,) = smtp_server.messages
    assert message["To"] == "ok@example.com"
    assert message["Subject"] == "Hello <you>"
    assert message["From"] == "Parley <no-reply@parley.test>"
    assert message.get_content_type() == "multipart/alternative"
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().strip() == "text body"
    assert smtp_server.logins == [("mailer", "s3cret")]
    recent = {m.to_address: m for m in await outbox.recent(10)}
    assert recent["ok@example.com"].sent_at is not None
    refused = recent["refused@example.com"]
    assert refused.sent_at is None
    assert refused.last_error
    assert "refused" in refused.last_error


async def test_mail_survives_an_unreachable_smtp_server_and_a_restart(
    server: RunningServer, smtp_server: SmtpServer
) -> None:
    outbox = server.context.stores.outbox
    await outbox.enqueue(Mail("later@example.com", "s", "t", "h"))
    with trio.socket.socket() as probe:  # a port with nobody listening
        await probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    down = Mailer(outbox, mail_settings(backend="smtp", smtp_host="127.0.0.1", smtp_port=dead_port))
    assert await down.deliver_due() == 1
    (mail,) = await outbox.recent(1)
    assert mail.sent_at is None
    assert mail.attempts == 1
    assert mail.last_error
    assert await down.deliver_due() == 0  # backing off: not due yet
    # A new process (new Mailer) finds the mail in the table once it is due again.
    await server.context.database.execute("UPDATE outbox SET next_attempt_at = now()")
    up = Mailer(
        outbox, mail_settings(backend="smtp", smtp_host="127.0.0.1", smtp_port=smtp_server.port)
    )
    assert await up.deliver_due() == 1
    (mail,) = await outbox.recent(1)
    assert mail.sent_at is not None
    assert mail.attempts == 2
    assert [m["To"] for m in smtp_server.messages] == ["later@example.com"]


# --- the development mailbox ---------------------------------------------------------------------


async def test_dev_mailbox_renders_recent_mail_escaped(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    account = await register(client)
    await server.context.stores.outbox.enqueue(
        Mail("evil@example.com", HOSTILE, HOSTILE, f"<p>{HOSTILE}</p><script>alert(1)</script>")
    )
    response = await client.get("/dev/mailbox")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;" in page
    assert account.email in page
    assert "Confirm your Parley account" in page
    assert 'sandbox=""' in page
    assert "default-src 'none'" in response.headers["content-security-policy"]
    data = (await client.get("/dev/mailbox.json", params={"limit": 1})).json()["data"]
    assert len(data) == 1
    assert data[0]["subject"] == HOSTILE
    assert (await client.get("/dev/mailbox.json", params={"limit": 0})).status_code == 422


async def test_dev_mailbox_is_404_in_production(tmp_path: Path, database_url: str) -> None:
    async with server_with(tmp_path, database_url, server={"env": "prod"}) as (_, client):
        assert (await client.get("/dev/mailbox")).status_code == 404
        assert (await client.get("/dev/mailbox.json")).status_code == 404
