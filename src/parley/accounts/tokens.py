"""Signed (JWT) tokens: issuing and verifying them, and minting opaque ones. Pure: no I/O.

Token kinds, all HS256 JWTs with a `kid` header, signed with the current key and verified with any
configured key (rotation: `auth.jwt_secret` + `auth.jwt_kid` sign, `auth.jwt_previous_keys` as
`kid:secret` still verify):

* access (`kind="access"`, `auth.access_ttl_seconds`): `sub` (user id), `iss`, `aud`, `iat`, `exp`,
  `jti`, `ver` (the user's token_version; bumping it kills every token at once), `role`.
* api_session (`kind="api_session"`, same lifetime): the access claims plus `tid`, the id of the API
  token it was exchanged for (POST /api/session), so deleting that API token can invalidate it.
* channel (`kind="channel"`, `auth.channel_token_ttl_seconds`): `sub`, `iss`, `aud`, `iat`, `exp`,
  `jti`, `ver` and `cid`, the one conversation the socket may join with it. It carries no role.

`kind` is required and checked, so a channel token is never accepted as an access token and the
reverse. Every claim is required (PyJWT only checks `exp` when present unless told to require
it), the algorithm is pinned to HS256 (so `alg: none` or an asymmetric algorithm is refused before
any key is chosen), and the claim types are checked too (PyJWT would accept `"exp": "123"`).

End users of an integration hold tokens their application signs with its own secret; those are
verified in `integrations.signing`, not here.

Opaque tokens (refresh, reset, confirmation, API tokens) are `accounts.opaque`; the header, PyJWT
and claim checks every verification goes through are `accounts.jwt_checks`.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import jwt

from parley.accounts.jwt_checks import (
    ALGORITHM,
    InvalidToken,
    decode,
    int_claim,
    str_claim,
    time_claim,
    timestamp,
    unverified_header,
    uuid_claim,
)
from parley.accounts.opaque import OpaqueToken, new_opaque_token
from parley.config import MIN_JWT_KEY_BYTES, AuthSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "ROLES",
    "AccessClaims",
    "ChannelClaims",
    "TokenKind",
    "TokenService",
]

ROLES: Final = ("registered", "moderator", "admin")
"""Roles a signed-in user can hold (DESIGN §4); `anonymous` is the absence of a token."""

TokenKind = Literal["access", "api_session", "channel"]
Role = Literal["registered", "moderator", "admin"]
OpaquePurpose = Literal["refresh", "password_reset", "confirm"]

_COMMON_CLAIMS: Final = ("sub", "iss", "aud", "iat", "exp", "jti", "kind", "ver")
_KIND_CLAIMS: Final[Mapping[str, tuple[str, ...]]] = {
    "access": ("role",),
    "api_session": ("role", "tid"),
    "channel": ("cid",),
}


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """A verified access or API-session token.

    `api_token_id` is set only for `kind == "api_session"`; the API layer must check that the API
    token still exists. Every caller must also compare `token_version` with the user's current one.
    """

    user_id: uuid.UUID
    role: Role
    token_version: int
    jti: str
    expires_at: datetime
    kind: Literal["access", "api_session"]
    api_token_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class ChannelClaims:
    """A verified channel token: `user_id` may join exactly `conversation_id` until `expires_at`."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    token_version: int
    jti: str
    expires_at: datetime


def _key_bytes(kid: str, secret: str) -> bytes:
    key = secret.encode("utf-8")
    if len(key) < MIN_JWT_KEY_BYTES:
        # config.py refuses these too; this guards services built from hand-made settings.
        raise ValueError(f"JWT key {kid!r} is shorter than {MIN_JWT_KEY_BYTES} bytes")
    return key


def _load_keys(settings: AuthSettings) -> dict[str, bytes]:
    if settings.jwt_secret is None:
        raise ValueError("auth.jwt_secret is not set (use config.with_jwt_secret)")
    if not settings.jwt_kid:
        raise ValueError("auth.jwt_kid must not be empty")
    keys = {settings.jwt_kid: _key_bytes(settings.jwt_kid, settings.jwt_secret)}
    for entry in settings.jwt_previous_keys:
        kid, sep, secret = entry.partition(":")
        if not sep or not kid:
            raise ValueError("auth.jwt_previous_keys entries are kid:secret")
        if kid in keys:
            raise ValueError(f"auth.jwt_previous_keys: kid {kid!r} is configured twice")
        keys[kid] = _key_bytes(kid, secret)
    return keys


class TokenService:
    """Issues and verifies Parley's JWTs and mints opaque tokens, from `settings.auth`.

    Stateless apart from its keys: revocation (token_version, deleted API tokens, refresh families)
    is checked by the caller against the store. `clock` returns Unix seconds; tests inject one to
    forge old tokens. Verification also checks `exp` against the real clock (in PyJWT), so a token
    is refused when either clock says it has expired.
    """

    def __init__(self, settings: AuthSettings, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._keys = _load_keys(settings)
        self._kid = settings.jwt_kid
        self._clock = clock

    @property
    def current_kid(self) -> str:
        """The `kid` new tokens are signed with."""
        return self._kid

    # -- issuing -------------------------------------------------------------------------------

    def issue_access(
        self, user_id: uuid.UUID, role: str, token_version: int
    ) -> tuple[str, datetime]:
        """Sign an access token for `user_id`; returns the token and its expiry (UTC).

        `role` must be one of `ROLES` and `token_version` >= 0 (`ValueError` otherwise).
        """
        self._check_role(role)
        return self._issue(
            "access",
            user_id,
            token_version,
            self._settings.access_ttl_seconds,
            {"role": role},
        )

    def issue_api_session(
        self,
        user_id: uuid.UUID,
        role: str,
        token_version: int,
        api_token_id: uuid.UUID,
    ) -> tuple[str, datetime]:
        """Sign the JWT POST /api/session returns for an API token; it lives as long as an access
        token and names the API token (`tid`) so that deleting the API token can invalidate it."""
        self._check_role(role)
        return self._issue(
            "api_session",
            user_id,
            token_version,
            self._settings.access_ttl_seconds,
            {"role": role, "tid": str(api_token_id)},
        )

    def issue_channel(
        self, user_id: uuid.UUID, conversation_id: uuid.UUID, token_version: int
    ) -> tuple[str, datetime]:
        """Sign a short-lived token that lets `user_id` join only `conversation_id`."""
        return self._issue(
            "channel",
            user_id,
            token_version,
            self._settings.channel_token_ttl_seconds,
            {"cid": str(conversation_id)},
        )

    def issue_opaque(self, purpose: OpaquePurpose) -> OpaqueToken:
        """Mint a refresh, password-reset or confirmation token with its configured expiry."""
        ttl = {
            "refresh": self._settings.refresh_ttl_seconds,
            "password_reset": self._settings.password_reset_ttl_seconds,
            "confirm": self._settings.confirm_ttl_seconds,
        }[purpose]
        plaintext, digest = new_opaque_token()
        return OpaqueToken(plaintext, digest, timestamp(math.floor(self._clock()) + ttl))

    def _issue(
        self,
        kind: TokenKind,
        user_id: uuid.UUID,
        token_version: int,
        ttl_seconds: int,
        extra: Mapping[str, Any],
    ) -> tuple[str, datetime]:
        if isinstance(token_version, bool) or token_version < 0:
            raise ValueError("token_version must be a non-negative integer")
        now = math.floor(self._clock())
        exp = now + ttl_seconds
        payload = {
            "sub": str(user_id),
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "iat": now,
            "exp": exp,
            "jti": uuid.uuid4().hex,
            "kind": kind,
            "ver": token_version,
            **extra,
        }
        token = jwt.encode(
            payload,
            self._keys[self._kid],
            algorithm=ALGORITHM,
            headers={"kid": self._kid, "typ": "JWT"},
        )
        return token, timestamp(exp)

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")

    # -- verifying -----------------------------------------------------------------------------

    def verify_access(self, token: str, *, allow_api_session: bool = True) -> AccessClaims:
        """Verify an access token (or, unless refused, an API-session token) for REST and sockets.

        Raises `InvalidToken` for anything but a well-formed, correctly signed, unexpired token of
        ours of one of those kinds. The caller still compares `token_version` with the user's.
        """
        kinds: tuple[TokenKind, ...] = (
            ("access", "api_session") if allow_api_session else ("access",)
        )
        payload = self._verify(token, kinds)
        kind: Literal["access", "api_session"] = payload["kind"]
        role = payload.get("role")
        if role not in ROLES:
            raise InvalidToken("invalid_claim", "unknown role")
        return AccessClaims(
            user_id=uuid_claim(payload, "sub"),
            role=role,
            token_version=int_claim(payload, "ver"),
            jti=payload["jti"],
            expires_at=timestamp(payload["exp"]),
            kind=kind,
            api_token_id=uuid_claim(payload, "tid") if kind == "api_session" else None,
        )

    def verify_channel(self, token: str) -> ChannelClaims:
        """Verify a channel token; the caller checks the topic names `conversation_id`."""
        payload = self._verify(token, ("channel",))
        return ChannelClaims(
            user_id=uuid_claim(payload, "sub"),
            conversation_id=uuid_claim(payload, "cid"),
            token_version=int_claim(payload, "ver"),
            jti=payload["jti"],
            expires_at=timestamp(payload["exp"]),
        )

    def _verify(self, token: str, kinds: tuple[TokenKind, ...]) -> dict[str, Any]:
        header = unverified_header(token)
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown_kid")
        payload = decode(
            token,
            key,
            require=_COMMON_CLAIMS,
            audience=self._settings.audience,
            issuer=self._settings.issuer,
        )
        kind = payload.get("kind")
        if kind not in kinds:
            raise InvalidToken("wrong_kind", f"{kind!r} token where {'/'.join(kinds)} expected")
        for claim in _KIND_CLAIMS[kind]:
            if payload.get(claim) is None:
                raise InvalidToken("missing_claim", claim)
        time_claim(payload, "iat")
        exp = time_claim(payload, "exp")
        if exp <= self._clock():
            raise InvalidToken("expired")
        str_claim(payload, "jti")
        return payload
