"""What a message must be, for every path that writes one: the one rule REST and sockets share.

A new message arrives over REST (`POST /api/conversations/{id}/messages`), over the socket
(`new_msg` on `conversation:{id}`, `send` on `private_chat:{id}`, `send_msg` on `room:chat`) and,
later, from the marketplace's "contact the seller"; an edit replaces a body. Each path calls
`validate_new_message` (an edit, and a group's title, `check_text`) and turns the field errors it
returns into its own error shape: a 422 with `error.fields` over REST, a reply with
`{"reason": "invalid", "errors": {...}}` on a socket. Nothing here raises for bad input.

The rules, counted in Unicode code points as users see them:

* body: a string, not blank, at most `messages.body_max_chars`, without NUL and without lone
  surrogates (JSON can carry `"\\u0000"` and `"\\ud800"`; PostgreSQL stores neither, and a row it
  refuses fails the writer's whole batch, every other conversation's messages in it included);
* client_id: absent (null), or a string of 1 to `CLIENT_ID_MAX_CHARS` characters with neither.

The database repeats the length rules as CHECK constraints (migration 0005), so a path that
forgot this module could not store what it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "CLIENT_ID_MAX_CHARS",
    "FieldErrors",
    "NewMessageFields",
    "check_client_id",
    "check_text",
    "validate_new_message",
]

FieldErrors = dict[str, list[str]]
"""Field name -> messages (DESIGN §4's `fields`)."""

CLIENT_ID_MAX_CHARS: Final = 64
"""A client's idempotency key: a UUID (36) or a ULID (26) fits with room; the database's CHECK
(`messages_client_id_length`) holds the same bound."""


@dataclass(frozen=True, slots=True)
class NewMessageFields:
    """A new message's fields once they passed the rules."""

    body: str
    client_id: str | None


def _unstorable(value: str) -> str | None:
    """Why PostgreSQL could not store `value` as text, or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        return "must not contain lone surrogates"
    return None


def check_text(value: object, max_chars: int) -> list[str]:
    """A non-blank string of at most `max_chars` that PostgreSQL can store (bodies, titles)."""
    if not isinstance(value, str):
        return ["must be a string"]
    if not value.strip():
        return ["must not be blank"]
    if len(value) > max_chars:
        return [f"must be at most {max_chars} characters"]
    problem = _unstorable(value)
    return [problem] if problem else []


def check_client_id(value: object) -> list[str]:
    """None, or a string of 1 to `CLIENT_ID_MAX_CHARS` characters that PostgreSQL can store."""
    if value is None:
        return []
    if not isinstance(value, str) or not 1 <= len(value) <= CLIENT_ID_MAX_CHARS:
        return [f"must be a string of 1 to {CLIENT_ID_MAX_CHARS} characters"]
    problem = _unstorable(value)
    return [problem] if problem else []


def validate_new_message(
    body: object, client_id: object, *, max_chars: int, body_field: str = "body"
) -> NewMessageFields | FieldErrors:
    """The new message's fields, or every field error (`body_field` names the body in them:
    `message` for the Daveslist and CompanyApi events, which call it that)."""
    errors: FieldErrors = {}
    body_errors = check_text(body, max_chars)
    if body_errors:
        errors[body_field] = body_errors
    client_id_errors = check_client_id(client_id)
    if client_id_errors:
        errors["client_id"] = client_id_errors
    if errors:
        return errors
    assert isinstance(body, str) and (client_id is None or isinstance(client_id, str))
    return NewMessageFields(body, client_id)
