"""Applications (DESIGN §4.2): their field rules, their credentials, and which secrets they accept.

An application's `app_key` is 20 hex characters and its `app_secret` 40 (Pusher's key is 20 hex
characters too; a secret of 40 ASCII bytes is long enough for HS256, which wants 32 or more).
After a rotation the previous secret is accepted until its expiry
(`integrations.secret_grace_seconds` after the rotation), so `accepted_secrets` is what every
signature check tries, newest first.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from parley.integrations.signing import Secret
from parley.store.applications import Application

NAME_MAX_CHARS: Final = 120
WEBHOOK_URL_MAX_CHARS: Final = 2000
MAX_CONNECTIONS_CEILING: Final = 10_000_000


def new_key() -> str:
    return secrets.token_hex(10)


def new_secret() -> str:
    return secrets.token_hex(20)


def accepted_secrets(app: Application, now: datetime) -> tuple[Secret, ...]:
    """The secrets that may sign for `app` at `now`: the current one, and a previous one still
    in its grace period."""
    current = Secret(app.secret_version, app.app_secret)
    expires = app.previous_secret_expires_at
    if app.previous_secret is None or expires is None or expires <= now:
        return (current,)
    return current, Secret(app.secret_version - 1, app.previous_secret)


def check_name(value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return ["must be a non-blank string"]
    if len(value.strip()) > NAME_MAX_CHARS:
        return [f"at most {NAME_MAX_CHARS} characters"]
    return []


def check_webhook_url(value: Any) -> list[str]:
    """An absolute http(s) URL, or null (no webhooks).

    Refused when the application is configured (422), never found out at delivery: another
    scheme, no host, a port that is no number, credentials in the URL (the debug view and the
    application's JSON show it; put a token in the path or query instead), a fragment, blanks.
    """
    if value is None:
        return []
    if not isinstance(value, str) or len(value) > WEBHOOK_URL_MAX_CHARS:
        return [f"must be an http(s) URL of at most {WEBHOOK_URL_MAX_CHARS} characters, or null"]
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or too big
    except ValueError:
        return ["must be an http(s) URL"]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ["must be an http(s) URL"]
    if any(c.isspace() for c in value) or not value.isprintable():
        return ["must not contain blanks or control characters"]
    if parts.username is not None or parts.password is not None:
        return ["must not carry credentials (user:password@)"]
    if parts.fragment:
        return ["must not have a fragment (#...)"]
    return []


def check_max_connections(value: Any) -> list[str]:
    """Sockets of the application's end users at once on a node (null: no quota)."""
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return ["must be an integer or null"]
    if not 0 <= value <= MAX_CONNECTIONS_CEILING:
        return [f"must be between 0 and {MAX_CONNECTIONS_CEILING}"]
    return []


def check_client_events(value: Any) -> list[str]:
    return [] if isinstance(value, bool) else ["must be true or false"]


check_flag = check_client_events
"""`webhook_batching` and `webhook_subscription_count` are true or false too."""
