"""Parley's own pages for the mailed links: `GET /confirm?token=` and `GET /reset?token=`.

Mails link here by default (`mail.confirm_link_template`, `mail.reset_link_template`, filled with
`server.public_url`). Opening a link never uses its token: mail scanners and link previews (Outlook
Safe Links, corporate gateways, chat unfurlers) fetch links before the person does, and a GET that
confirmed would use up the single-use token for a machine, or confirm an address nobody read. So
the GET shows a page whose button posts the token back to the same path, and only that POST does
what `POST /api/auth/confirm` or `POST /api/auth/password/reset` does (the same functions, in
api/account_common.py), then shows the outcome.

The pages are plain HTML forms posting `application/x-www-form-urlencoded`, with no script and
nothing from elsewhere: they work in any browser, with JavaScript off, behind a strict
Content-Security-Policy (`default-src 'none'`). The form posts to a relative URL, so the pages also
work when a proxy serves Parley under a path prefix. `Referrer-Policy: no-referrer` keeps the token
in the address bar from leaking to anything, and `Cache-Control: no-store` keeps it out of caches.
They are outside /api, hence not in the OpenAPI document.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Final

from quart import Blueprint, Response, request

from parley.accounts import hash_opaque
from parley.api.account_common import (
    clear_refresh_cookie,
    redeem_confirmation,
    reset_password_with,
)
from parley.api.context import parley_context
from parley.api.errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Sequence

blueprint = Blueprint("pages", __name__)

HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
_STYLE: Final = """body{font:16px/1.5 system-ui,sans-serif;color:#222;max-width:30rem;
margin:3rem auto;padding:0 1rem} h1{font-size:1.4rem} label{display:block;margin:.8rem 0 .2rem}
input[type=password]{width:100%;padding:.45rem;font:inherit;box-sizing:border-box}
button{margin-top:1rem;padding:.55rem 1.1rem;font:inherit;background:#2a6;color:#fff;border:0;
border-radius:4px;cursor:pointer} .error{color:#b00020} .note{color:#666;font-size:.9rem}"""
_BAD_LINK: Final = (
    "This link is invalid, was already used, or has expired. Ask for a new one, and open the "
    "newest mail's link."
)
_NO_TOKEN: Final = (
    "This link is incomplete: it has no token. Copy the whole link from the mail into the "
    "address bar, or paste the token shown in the mail."
)


def _page(title: str, body: str, status: int = 200) -> Response:
    """A whole page; `body` is HTML already escaped by the caller."""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)} · Parley</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(
        document, status=status, content_type="text/html; charset=utf-8", headers=HEADERS
    )


def _paragraphs(*texts: str, css: str = "") -> str:
    attribute = f' class="{css}"' if css else ""
    return "".join(f"<p{attribute}>{html.escape(text)}</p>" for text in texts)


def _token_field(token: str) -> str:
    return f'<input type="hidden" name="token" value="{html.escape(token, quote=True)}">'


async def _form_field(name: str) -> str:
    value = (await request.form).get(name, "")
    return value if isinstance(value, str) else ""


async def _token_valid(token: str, purposes: Sequence[str]) -> str | None:
    """The first of `purposes` that `token` is unused and unexpired for, or None."""
    tokens = parley_context().stores.tokens
    digest = hash_opaque(token)
    for purpose in purposes:
        if await tokens.one_time_token_valid(digest, purpose):
            return purpose
    return None


# --- confirm an address --------------------------------------------------------------------------


@blueprint.get("/confirm")
async def confirm_page() -> Response:
    token = request.args.get("token", "")
    if not token:
        return _page("Confirm your e-mail address", _paragraphs(_NO_TOKEN, css="error"), 400)
    purpose = await _token_valid(token, ("confirm", "email_change"))
    if purpose is None:
        return _page("Confirm your e-mail address", _paragraphs(_BAD_LINK, css="error"), 422)
    if purpose == "confirm":
        title, text = "Confirm your e-mail address", "Confirm that this address is yours."
    else:
        title, text = (
            "Confirm your new e-mail address",
            ("Confirm the new address of your account; until you do, the old one stays in use."),
        )
    form = (
        f'<form method="post" action="confirm">{_token_field(token)}'
        f'<button type="submit">{html.escape(title.replace("your ", "my "))}</button></form>'
    )
    return _page(title, _paragraphs(text) + form)


@blueprint.post("/confirm")
async def confirm_submit() -> Response:
    token = await _form_field("token")
    if not token:
        return _page("Confirm your e-mail address", _paragraphs(_NO_TOKEN, css="error"), 400)
    try:
        outcome = await redeem_confirmation(token)
    except ApiError as error:
        text = _BAD_LINK if error.status == 422 else f"{error.message}."
        return _page("Confirm your e-mail address", _paragraphs(text, css="error"), error.status)
    if outcome.purpose == "confirm":
        title, text = "Address confirmed", f"{outcome.user.email} is confirmed. Thank you!"
    else:
        title, text = "Address changed", f"Your account now uses {outcome.user.email}."
    return _page(title, _paragraphs(text, "You can close this page."))


# --- reset a password ----------------------------------------------------------------------------


def _reset_form(token: str, problems: list[str] | None = None, status: int = 200) -> Response:
    auth = parley_context().settings.auth
    bounds = f'minlength="{auth.password_min_length}" maxlength="{auth.password_max_length}"'
    errors = _paragraphs(*problems, css="error") if problems else ""
    form = (
        f'{errors}<form method="post" action="reset">{_token_field(token)}'
        '<label for="password">New password</label>'
        f'<input type="password" id="password" name="password" required {bounds} '
        'autocomplete="new-password" autofocus>'
        '<label for="password_confirmation">The same again</label>'
        '<input type="password" id="password_confirmation" name="password_confirmation" '
        f'required {bounds} autocomplete="new-password">'
        '<button type="submit">Set the new password</button></form>'
    )
    note = _paragraphs(
        f"At least {auth.password_min_length} characters. Setting it signs you out everywhere.",
        css="note",
    )
    return _page("Choose a new password", form + note, status)


@blueprint.get("/reset")
async def reset_page() -> Response:
    token = request.args.get("token", "")
    if not token:
        return _page("Choose a new password", _paragraphs(_NO_TOKEN, css="error"), 400)
    if await _token_valid(token, ("reset",)) is None:
        return _page("Choose a new password", _paragraphs(_BAD_LINK, css="error"), 422)
    return _reset_form(token)


@blueprint.post("/reset")
async def reset_submit() -> Response:
    token = await _form_field("token")
    if not token:
        return _page("Choose a new password", _paragraphs(_NO_TOKEN, css="error"), 400)
    password = await _form_field("password")
    if password != await _form_field("password_confirmation"):
        return _reset_form(token, ["The two passwords differ."], 422)
    try:
        await reset_password_with(token, password)
    except ApiError as error:
        fields = error.fields or {}
        if "password" in fields:
            return _reset_form(token, [f"The password {p}." for p in fields["password"]], 422)
        return _page("Choose a new password", _paragraphs(_BAD_LINK, css="error"), error.status)
    response = _page(
        "Password changed",
        _paragraphs(
            "Your new password is set, and every session was signed out.",
            "Sign in with the new password; you can close this page.",
        ),
    )
    clear_refresh_cookie(response)
    return response
