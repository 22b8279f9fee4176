"""The long-poll session token: `lp1.<base64url(session id, user id, expiry)>.<base64url(HMAC)>`.

Keyed (HMAC-SHA256) from `auth.jwt_secret` under a label of its own, and checked without any
look-up: a forged, altered or expired token is refused before the session table is asked. The
prefix tells it from the user's own `token` parameter (a JWT starts `eyJ`), which phoenix.js sends
first, the session token appended. The expiry is on trio's clock, so a token means something only
to the process that issued it (long-poll sessions live in one process). Every spelling is
canonical base64url, so a token has no malleable variants.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import uuid
from typing import Final

import trio

TOKEN_PREFIX: Final = "lp1."
_KEY_LABEL: Final = b"parley long-poll session token v1"
_PAYLOAD: Final = struct.Struct(">16s16sd")
"""Session id, user id, expiry (trio's clock: tokens only mean something to this process)."""
_MAX_TOKEN_CHARS: Final = 256


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:  # one spelling per token: no malleable variants
        raise ValueError("not canonical base64url")
    return raw


class SessionTokens:
    """Signs session tokens and checks them (signature, expiry) without any look-up."""

    def __init__(self, secret: str, ttl_seconds: float) -> None:
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self._ttl = ttl_seconds

    def issue(self, session_id: bytes, user_id: uuid.UUID, *, expires: float | None = None) -> str:
        """A token for the session; `expires` (trio's clock) defaults to now plus the ttl."""
        until = trio.current_time() + self._ttl if expires is None else expires
        payload = _PAYLOAD.pack(session_id, user_id.bytes, until)
        return f"{TOKEN_PREFIX}{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str) -> tuple[bytes, uuid.UUID] | None:
        """(session id, user id) of a good, unexpired token; None for anything else."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN_CHARS:
            return None
        body, _, mac = token[len(TOKEN_PREFIX) :].partition(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except ValueError:  # bad base64 (binascii.Error) or non-ASCII
            return None
        if len(payload) != _PAYLOAD.size or not hmac.compare_digest(given, self._mac(payload)):
            return None
        session_id, user, expires = _PAYLOAD.unpack(payload)
        if expires < trio.current_time():
            return None
        return session_id, uuid.UUID(bytes=user)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


def credential_digest(credential: str) -> bytes:
    """What a session keeps of the auth token that opened it, to compare later requests' with."""
    return hashlib.sha256(credential.encode("utf-8", "surrogateescape")).digest()
