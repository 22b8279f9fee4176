"""The Pusher protocol's rules that need no I/O (PUSHER_PROTOCOL.md §4-§8): channel kinds and
names, the authorization signatures, `channel_data` and `user_data`.

Signatures are checked against the exact strings the client sent (`channel_data`, `user_data`):
never re-serialised, since the SDKs disagree about JSON spacing. Comparisons are constant-time
(`hmac.compare_digest`), over every secret the application accepts right now (a rotation's grace
period).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import orjson

from parley.integrations.signing import Secret, channel_authorization
from parley.integrations.topics import SERVER_TO_USER

_CHANNEL_CHARS: Final = re.compile(r"[A-Za-z0-9_\-=@,.;]+")


class Kind(Enum):
    PUBLIC = "public"
    PRIVATE = "private"
    ENCRYPTED = "private-encrypted"
    PRESENCE = "presence"
    USER = "server-to-user"


@dataclass(frozen=True, slots=True)
class ChannelKind:
    kind: Kind
    cache: bool

    @property
    def needs_auth(self) -> bool:
        return self.kind in (Kind.PRIVATE, Kind.ENCRYPTED, Kind.PRESENCE)

    @property
    def takes_client_events(self) -> bool:
        """Private and presence channels only (not public, not encrypted: §4, §7)."""
        return self.kind in (Kind.PRIVATE, Kind.PRESENCE)


def channel_kind(name: str) -> ChannelKind:
    """The kind of channel `name` (by its prefix, §4)."""
    if name.startswith(SERVER_TO_USER):
        return ChannelKind(Kind.USER, cache=False)
    for prefix, kind in (
        ("private-encrypted-", Kind.ENCRYPTED),
        ("private-", Kind.PRIVATE),
        ("presence-", Kind.PRESENCE),
    ):
        if name.startswith(prefix):
            return ChannelKind(kind, cache=name[len(prefix) :].startswith("cache-"))
    return ChannelKind(Kind.PUBLIC, cache=name.startswith("cache-"))


def name_problem(name: str, max_chars: int) -> str | None:
    """Why `name` cannot be subscribed to (None: it can). `#server-to-user-{id}` is the one
    name outside Pusher's charset a client may use."""
    if name.startswith(SERVER_TO_USER):
        return None if len(name) > len(SERVER_TO_USER) else "no user id"
    if not name or len(name) > max_chars:
        return f"channel names have 1 to {max_chars} characters"
    if _CHANNEL_CHARS.fullmatch(name) is None:
        return "channel names use only A-Z a-z 0-9 and _ - = @ , . ;"
    return None


def signature_valid(auth: object, key: str, secrets: Iterable[Secret], text: str) -> bool:
    """Whether `auth` is `{key}:{hex HMAC-SHA256(secret, text)}` for one of `secrets`."""
    if not isinstance(auth, str):
        return False
    given = auth.encode("utf-8", "replace")
    found = False
    for secret in secrets:
        expected = channel_authorization(key, secret.value, text).encode()
        found |= hmac.compare_digest(given, expected)  # every secret compared, found or not
    return found


def channel_string(socket_id: str, channel: str, channel_data: str | None) -> str:
    """What a subscription signature covers (§5)."""
    if channel_data is None:
        return f"{socket_id}:{channel}"
    return f"{socket_id}:{channel}:{channel_data}"


def signin_string(socket_id: str, user_data: str) -> str:
    return f"{socket_id}::user::{user_data}"


class RuleError(ValueError):
    """Input that breaks a rule; the message says which (sent back to the client)."""


@dataclass(frozen=True, slots=True)
class Member:
    """A presence member as `channel_data` names it."""

    user_id: str
    user_info: Any


def presence_member(channel_data: object, *, max_id_chars: int, max_info_bytes: int) -> Member:
    """The member `channel_data` (a JSON string) describes; `RuleError` says why not."""
    if not isinstance(channel_data, str):
        raise RuleError("presence channels need channel_data")
    try:
        decoded = orjson.loads(channel_data)
    except orjson.JSONDecodeError:
        raise RuleError("channel_data is not JSON") from None
    if not isinstance(decoded, dict):
        raise RuleError("channel_data must be a JSON object")
    user_id = _user_id(decoded.get("user_id"), max_id_chars, "channel_data.user_id")
    user_info = decoded.get("user_info")
    if user_info is not None and len(orjson.dumps(user_info)) > max_info_bytes:
        raise RuleError(f"user_info is over {max_info_bytes} bytes")
    return Member(user_id, user_info)


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """What `user_data` of a sign-in says (§8)."""

    user_id: str
    user_info: Any
    watchlist: tuple[str, ...]


def signed_in_user(user_data: object, *, max_id_chars: int) -> SignedInUser:
    """The user `user_data` (a JSON string) describes; `RuleError` says why not."""
    if not isinstance(user_data, str):
        raise RuleError("user_data must be a string")
    try:
        decoded = orjson.loads(user_data)
    except orjson.JSONDecodeError:
        raise RuleError("user_data is not JSON") from None
    if not isinstance(decoded, dict):
        raise RuleError("user_data must be a JSON object")
    user_id = decoded.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise RuleError("user_data.id must be a non-empty string")
    user_id = _user_id(user_id, max_id_chars, "user_data.id")
    watchlist = decoded.get("watchlist", [])
    if not isinstance(watchlist, list) or not all(isinstance(w, str) for w in watchlist):
        raise RuleError("user_data.watchlist must be a list of user ids")
    return SignedInUser(user_id, decoded.get("user_info"), tuple(dict.fromkeys(watchlist)))


def _user_id(value: object, max_chars: int, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RuleError(f"{field} must be a string or a number")
    user_id = str(value)
    if not 1 <= len(user_id) <= max_chars:
        raise RuleError(f"{field} has 1 to {max_chars} characters")
    return user_id
