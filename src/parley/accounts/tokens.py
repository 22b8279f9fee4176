"""Signed (JWT) and opaque tokens: issuing, verifying and hashing them. Pure: no I/O.

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
any key is chosen), and the claim types are checked here too (PyJWT would accept `"exp": "123"`).

App tokens are different: an integration's backend signs them with its own `app_secret` (Pusher
style), so they carry `sub` (the app's end-user id, any string), `app` (the app key) and `exp`; our
`iss`/`aud` are not required because third parties mint them and the app-specific secret plus the
`app` claim already bind the token to one application.

Opaque tokens (refresh, password reset, e-mail confirmation, API tokens) are 256-bit random strings;
only their SHA-256 is stored. Single use (reset, confirm), rotation on every refresh and revoking a
whole refresh family when a used refresh token comes back are enforced where they are stored
(`parley.store`, driven by `parley.api`): this module only mints and hashes them.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

import jwt

from parley.config import MIN_JWT_KEY_BYTES, AuthSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from jwt.types import Options

__all__ = [
    "ALGORITHM",
    "ROLES",
    "AccessClaims",
    "AppTokenClaims",
    "ChannelClaims",
    "InvalidToken",
    "InvalidTokenReason",
    "OpaqueToken",
    "TokenKind",
    "TokenService",
    "hash_opaque",
    "new_opaque_token",
]

ALGORITHM: Final = "HS256"
"""The only algorithm issued or accepted, for our tokens and for app-signed ones."""

MAX_TOKEN_CHARS: Final = 8192
"""Longer strings are refused as malformed before any parsing (bounded work per request)."""

OPAQUE_TOKEN_BYTES: Final = 32

ROLES: Final = ("registered", "moderator", "admin")
"""Roles a signed-in user can hold (DESIGN §4); `anonymous` is the absence of a token."""

TokenKind = Literal["access", "api_session", "channel"]
Role = Literal["registered", "moderator", "admin"]
OpaquePurpose = Literal["refresh", "password_reset", "confirm"]

InvalidTokenReason = Literal[
    "malformed",
    "algorithm",
    "unknown_kid",
    "signature",
    "issuer",
    "audience",
    "expired",
    "not_yet_valid",
    "missing_claim",
    "invalid_claim",
    "wrong_kind",
    "wrong_app",
]

_COMMON_CLAIMS: Final = ("sub", "iss", "aud", "iat", "exp", "jti", "kind", "ver")
_KIND_CLAIMS: Final[Mapping[str, tuple[str, ...]]] = {
    "access": ("role",),
    "api_session": ("role", "tid"),
    "channel": ("cid",),
}
_APP_CLAIMS: Final = ("sub", "app", "exp")
_MAX_APP_SUBJECT_CHARS: Final = 255
_MAX_TIMESTAMP: Final = 253_402_300_799  # 9999-12-31T23:59:59Z


class InvalidToken(Exception):
    """A token was refused. `reason` is for logs and for the API's error code; always a 401."""

    def __init__(self, reason: InvalidTokenReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: InvalidTokenReason = reason
        self.detail = detail


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


@dataclass(frozen=True, slots=True)
class AppTokenClaims:
    """A verified app-signed token: `subject` is the application's own end-user id (any string)."""

    app_key: str
    subject: str
    expires_at: datetime


class OpaqueToken(NamedTuple):
    """A freshly minted opaque token: show `plaintext` once, store `digest` and `expires_at`."""

    plaintext: str
    digest: bytes
    expires_at: datetime


def new_opaque_token(prefix: str = "") -> tuple[str, bytes]:
    """Return a new 256-bit random token (URL-safe text, optional readable prefix) and its SHA-256.

    A prefix such as `"plt_"` makes leaked API tokens easy to spot for secret scanners.
    """
    plaintext = prefix + secrets.token_urlsafe(OPAQUE_TOKEN_BYTES)
    return plaintext, hash_opaque(plaintext)


def hash_opaque(plaintext: str) -> bytes:
    """The stored form of an opaque token: its SHA-256 (32 bytes).

    A fast unsalted hash is right here, unlike for passwords: the tokens carry 256 bits of
    randomness, so neither brute force nor precomputed tables are possible, and a leaked table of
    digests cannot be turned back into usable tokens. Lookups are by digest (an index), so
    comparing the secret in Python never happens and there is no timing side channel to guard.
    Argon2 would only cost CPU on every refresh and API call.
    """
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).digest()


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


def _timestamp(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def _unverified_header(token: object) -> dict[str, Any]:
    """Parse the JOSE header, refusing anything that is not a plausible compact JWS."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("malformed", "not a token string")
    if token.count(".") != 2:
        raise InvalidToken("malformed", "not a compact JWS")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("malformed", str(exc)) from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("algorithm", f"alg {header.get('alg')!r} is not allowed")
    if "crit" in header or "b64" in header:
        raise InvalidToken("malformed", "unsupported header parameter")
    return header


def _decode(
    token: str,
    key: bytes,
    *,
    require: tuple[str, ...],
    audience: str | None = None,
    issuer: str | None = None,
) -> dict[str, Any]:
    """Verify signature and registered claims with PyJWT, mapping its errors to `InvalidToken`."""
    options: Options = {
        "require": list(require),
        "verify_signature": True,
        "verify_exp": True,
        "verify_iat": True,
        "verify_nbf": True,
        "verify_sub": True,
        "verify_jti": True,
        "verify_iss": issuer is not None,
        "verify_aud": audience is not None,
        "strict_aud": audience is not None,
        "enforce_minimum_key_length": True,
    }
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options=options,
            audience=audience,
            issuer=issuer,
            leeway=0,
        )
    except jwt.InvalidSignatureError:
        raise InvalidToken("signature") from None
    except jwt.ExpiredSignatureError:
        raise InvalidToken("expired") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("not_yet_valid") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken("missing_claim", exc.claim) from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("issuer") from None
    except jwt.InvalidAlgorithmError:
        raise InvalidToken("algorithm") from None
    except jwt.DecodeError as exc:
        raise InvalidToken("malformed", str(exc)) from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("invalid_claim", str(exc)) from None
    return payload


def _int_claim(
    payload: Mapping[str, Any], name: str, *, minimum: int = 0, maximum: int = 2**63 - 1
) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidToken("invalid_claim", f"{name} must be an integer in [{minimum}, {maximum}]")
    return value


def _time_claim(payload: Mapping[str, Any], name: str) -> int:
    """A NumericDate we can turn into a `datetime` (so a far-future `exp` cannot overflow)."""
    return _int_claim(payload, name, maximum=_MAX_TIMESTAMP)


def _uuid_claim(payload: Mapping[str, Any], name: str) -> uuid.UUID:
    value = payload.get(name)
    if not isinstance(value, str) or len(value) != 36:
        raise InvalidToken("invalid_claim", f"{name} must be a UUID")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidToken("invalid_claim", f"{name} must be a UUID") from None


def _str_claim(payload: Mapping[str, Any], name: str, *, max_chars: int = 255) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise InvalidToken("invalid_claim", f"{name} must be a non-empty string")
    return value


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
        return OpaqueToken(plaintext, digest, _timestamp(math.floor(self._clock()) + ttl))

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
        return token, _timestamp(exp)

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
            user_id=_uuid_claim(payload, "sub"),
            role=role,
            token_version=_int_claim(payload, "ver"),
            jti=payload["jti"],
            expires_at=_timestamp(payload["exp"]),
            kind=kind,
            api_token_id=_uuid_claim(payload, "tid") if kind == "api_session" else None,
        )

    def verify_channel(self, token: str) -> ChannelClaims:
        """Verify a channel token; the caller checks the topic names `conversation_id`."""
        payload = self._verify(token, ("channel",))
        return ChannelClaims(
            user_id=_uuid_claim(payload, "sub"),
            conversation_id=_uuid_claim(payload, "cid"),
            token_version=_int_claim(payload, "ver"),
            jti=payload["jti"],
            expires_at=_timestamp(payload["exp"]),
        )

    def _verify(self, token: str, kinds: tuple[TokenKind, ...]) -> dict[str, Any]:
        header = _unverified_header(token)
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown_kid")
        payload = _decode(
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
        _time_claim(payload, "iat")
        exp = _time_claim(payload, "exp")
        if exp <= self._clock():
            raise InvalidToken("expired")
        _str_claim(payload, "jti")
        return payload

    def verify_app_token(self, token: str, app_key: str, app_secret: str) -> AppTokenClaims:
        """Verify a socket token an application's backend signed with its `app_secret`.

        HS256 only; `sub`, `app` and `exp` are required and `app` must equal `app_key`; `iat` and
        `nbf` are checked when present. `iss`/`aud` are not required (see the module docstring).
        `app_secret` must be at least 32 bytes: a `ValueError` otherwise, as that is our bug, not
        the client's.
        """
        key = app_secret.encode("utf-8")
        if len(key) < MIN_JWT_KEY_BYTES:
            raise ValueError(f"app secrets must be at least {MIN_JWT_KEY_BYTES} bytes")
        _unverified_header(token)
        payload = _decode(token, key, require=_APP_CLAIMS)
        if payload.get("app") != app_key:
            raise InvalidToken("wrong_app")
        exp = _time_claim(payload, "exp")
        if exp <= self._clock():
            raise InvalidToken("expired")
        if "iat" in payload:
            _time_claim(payload, "iat")
        return AppTokenClaims(
            app_key=app_key,
            subject=_str_claim(payload, "sub", max_chars=_MAX_APP_SUBJECT_CHARS),
            expires_at=_timestamp(exp),
        )
