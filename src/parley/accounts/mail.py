"""The account e-mails: confirm an address, reset a password, confirm a new address, welcome.

Each builder returns a `Mail` (plain text and HTML) for the outbox. Everything that comes from a
user (username, address) or from a token is escaped in the HTML part, so a username such as
`<script>` renders as text in any mail client and in the development mailbox.

Links are `mail.confirm_link_template` and `mail.reset_link_template` filled with
`server.public_url` and the token: by default Parley's own pages `/confirm?token=...` and
`/reset?token=...` (api/pages.py), which finish the flow; an app may point them at its own pages,
which post the token to `POST /api/auth/confirm` or `POST /api/auth/password/reset`. The mails also
show the raw token so API-only clients can do the same by hand.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from parley.store.outbox import Mail

if TYPE_CHECKING:
    from parley.config import Settings

__all__ = [
    "MailLinks",
    "confirm_mail",
    "email_change_mail",
    "password_reset_mail",
    "welcome_mail",
]

PRODUCT: Final = "Parley"


@dataclass(frozen=True, slots=True)
class MailLinks:
    """Builds the mailed links from the configured templates (`{public_url}`, `{token}`)."""

    public_url: str
    confirm_template: str
    reset_template: str

    @classmethod
    def from_settings(cls, settings: Settings) -> MailLinks:
        mail = settings.mail
        return cls(settings.server.public_url, mail.confirm_link_template, mail.reset_link_template)

    def confirm(self, token: str) -> str:
        """Where a confirmation token is redeemed (sign-up and e-mail change alike)."""
        return self._fill(self.confirm_template, token)

    def reset(self, token: str) -> str:
        """Where a password-reset token is redeemed."""
        return self._fill(self.reset_template, token)

    def _fill(self, template: str, token: str) -> str:
        return template.format(public_url=self.public_url.rstrip("/"), token=quote(token, safe=""))


def _hours(seconds: int) -> str:
    hours = max(1, round(seconds / 3600))
    return "1 hour" if hours == 1 else f"{hours} hours"


def _html(
    title: str, paragraphs: list[str], action: tuple[str, str] | None, token: str | None
) -> str:
    """A minimal, inline-styled HTML mail; `paragraphs` and all arguments are plain text."""
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title></head>",
        '<body style="font-family:system-ui,sans-serif;line-height:1.5;color:#222;'
        'max-width:36rem;margin:1rem auto">',
        f'<h1 style="font-size:1.3rem">{esc(title)}</h1>',
    ]
    parts += [f"<p>{esc(p)}</p>" for p in paragraphs]
    if action is not None:
        label, url = action
        parts.append(
            f'<p><a href="{esc(url, quote=True)}" style="display:inline-block;padding:.5rem 1rem;'
            f'background:#2a6;color:#fff;text-decoration:none;border-radius:4px">{esc(label)}</a></p>'
        )
        parts.append(f'<p style="font-size:.85rem;color:#666">Or open: {esc(url)}</p>')
    if token is not None:
        parts.append(f'<p style="font-size:.85rem;color:#666">Token: <code>{esc(token)}</code></p>')
    parts.append(
        '<p style="font-size:.85rem;color:#666">If you did not ask for this, ignore this mail.</p>'
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _text(paragraphs: list[str], link: str | None, token: str | None) -> str:
    lines = [*paragraphs]
    if link is not None:
        lines.append(link)
    if token is not None:
        lines.append(f"Token: {token}")
    lines.append("If you did not ask for this, ignore this mail.")
    return "\n\n".join(lines) + "\n"


def confirm_mail(to: str, username: str, token: str, *, links: MailLinks, ttl_seconds: int) -> Mail:
    """Sent at registration: confirm that the address is yours."""
    url = links.confirm(token)
    greeting = f"Hello {username},"
    body = [
        greeting,
        f"Welcome to {PRODUCT}! Please confirm your e-mail address; "
        f"the link works once, for {_hours(ttl_seconds)}.",
    ]
    return Mail(
        to_address=to,
        subject=f"Confirm your {PRODUCT} account",
        text_body=_text(body, url, token),
        html_body=_html("Confirm your e-mail address", body, ("Confirm my address", url), token),
    )


def password_reset_mail(
    to: str, username: str, token: str, *, links: MailLinks, ttl_seconds: int
) -> Mail:
    """Sent by forgot-password: a single-use link to choose a new password."""
    url = links.reset(token)
    body = [
        f"Hello {username},",
        f"Someone (hopefully you) asked to reset the password of your {PRODUCT} account. "
        f"The link works once, for {_hours(ttl_seconds)}; using it signs you out everywhere.",
    ]
    return Mail(
        to_address=to,
        subject=f"Reset your {PRODUCT} password",
        text_body=_text(body, url, token),
        html_body=_html("Reset your password", body, ("Choose a new password", url), token),
    )


def email_change_mail(
    to: str, username: str, token: str, *, links: MailLinks, ttl_seconds: int
) -> Mail:
    """Sent to the NEW address by PATCH /api/me/email: confirming it applies the change."""
    url = links.confirm(token)
    body = [
        f"Hello {username},",
        f"Please confirm {to} as the new e-mail address of your {PRODUCT} account. "
        f"Until you do, the old address stays in use. The link works once, "
        f"for {_hours(ttl_seconds)}.",
    ]
    return Mail(
        to_address=to,
        subject=f"Confirm your new {PRODUCT} e-mail address",
        text_body=_text(body, url, token),
        html_body=_html("Confirm your new address", body, ("Confirm this address", url), token),
    )


def welcome_mail(
    to: str,
    username: str,
    password: str,
    token: str,
    *,
    links: MailLinks,
    ttl_seconds: int,
    created_by: str,
) -> Mail:
    """Sent when a moderator or admin creates an account: the generated password, and a link to
    confirm the address. The user should change the password after signing in."""
    url = links.confirm(token)
    body = [
        f"Hello {username},",
        f"{created_by} created a {PRODUCT} account for you.",
        f"Sign in with this e-mail address and the password: {password}",
        "Please change it after signing in (PATCH /api/me/password, or your profile page), "
        f"and confirm your address with the link below ({_hours(ttl_seconds)}).",
    ]
    return Mail(
        to_address=to,
        subject=f"Your {PRODUCT} account",
        text_body=_text(body, url, token),
        html_body=_html(f"Your {PRODUCT} account", body, ("Confirm my address", url), token),
    )
