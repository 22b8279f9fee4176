"""Development-only pages: the mailbox preview (like Bamboo's `/sent_emails`).

`GET /dev/mailbox` renders the newest outbox mails (sent or still queued) as an HTML page;
`GET /dev/mailbox.json` gives the same as JSON for tests and scripts. Both answer 404 when
`server.env` is "prod": mail contents (reset links, generated passwords) are secrets there. They are
outside /api, hence not in the OpenAPI document.

Everything from the mails is escaped; each HTML body is shown in a sandboxed iframe (`srcdoc`, no
scripts, no same-origin), so a hostile mail cannot run code on this page.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Final

from quart import Blueprint, Response, jsonify

from parley.api.body import query_int
from parley.api.context import parley_context
from parley.api.errors import not_found
from parley.isotime import iso

if TYPE_CHECKING:
    from parley.store.outbox import QueuedMail

blueprint = Blueprint("dev", __name__)

MAILBOX_DEFAULT: Final = 50
MAILBOX_MAX: Final = 500


def _dev_only() -> None:
    if parley_context().settings.server.env == "prod":
        raise not_found()


def mail_json(mail: QueuedMail) -> dict[str, Any]:
    return {
        "id": mail.id,
        "to": mail.to_address,
        "subject": mail.subject,
        "text_body": mail.text_body,
        "html_body": mail.html_body,
        "inserted_at": iso(mail.inserted_at),
        "attempts": mail.attempts,
        "sent_at": iso(mail.sent_at),
        "last_error": mail.last_error,
    }


async def _recent() -> list[QueuedMail]:
    _dev_only()
    limit = query_int("limit", MAILBOX_DEFAULT, minimum=1, maximum=MAILBOX_MAX)
    return await parley_context().stores.outbox.recent(limit)


@blueprint.get("/dev/mailbox.json")
async def mailbox_json() -> Response:
    return jsonify({"data": [mail_json(m) for m in await _recent()]})


_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#222}
.mail{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.meta{color:#555;font-size:.9rem} pre{white-space:pre-wrap;background:#f7f7f7;padding:.5rem}
iframe{width:100%;height:22rem;border:1px solid #eee;background:#fff}
.pending{color:#b60} .sent{color:#282}"""


def _render(mails: list[QueuedMail]) -> str:
    esc = html.escape
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        "<title>Parley mailbox</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Parley mailbox (development)</h1>",
        f"<p>{len(mails)} newest mails. JSON: <code>/dev/mailbox.json</code></p>",
    ]
    if not mails:
        parts.append("<p>No mail yet.</p>")
    for mail in mails:
        status = (
            f'<span class="sent">sent {esc(iso(mail.sent_at) or "")}</span>'
            if mail.sent_at
            else f'<span class="pending">queued ({mail.attempts} attempts)</span>'
        )
        error = f" — last error: {esc(mail.last_error)}" if mail.last_error else ""
        parts.append(
            f'<div class="mail" id="mail-{mail.id}"><h2>{esc(mail.subject)}</h2>'
            f'<div class="meta">#{mail.id} to <b>{esc(mail.to_address)}</b>, '
            f"{esc(iso(mail.inserted_at) or '')}, {status}{error}</div>"
            f"<details open><summary>HTML</summary>"
            f'<iframe sandbox="" referrerpolicy="no-referrer" '
            f'srcdoc="{esc(mail.html_body, quote=True)}"></iframe></details>'
            f"<details><summary>Text</summary><pre>{esc(mail.text_body)}</pre></details></div>"
        )
    parts.append("</body></html>")
    return "".join(parts)


@blueprint.get("/dev/mailbox")
async def mailbox() -> Response:
    response = Response(_render(await _recent()), content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
