"""Signing with an application's secret: Pusher's request signatures and channel authorizations
(PUSHER_PROTOCOL.md §5, §9), and the end-user tokens an application's backend signs (DESIGN §4.2).

Pure: no I/O and no clock of its own (callers pass `now`, Unix seconds), so the Pusher protocol's
server side (issue 17) and the trigger endpoint share every rule here.

* **Request signatures**: `auth_signature = hex(HMAC-SHA256(secret, METHOD\\nPATH\\nQUERY))`, QUERY
  being every parameter but `auth_signature`, keys lower-cased and sorted, joined `k=v&...`
  unescaped; `auth_timestamp` within a window of the server's clock; `body_md5` (hex MD5 of the
  body) required whenever a body is sent and checked whenever it is given.
* **Channel authorizations**: `"{key}:" + hex(HMAC-SHA256(secret, string_to_sign))`.
* **End-user tokens**: HS256 JWTs with header `kid` = the app key, `sub` (the application's own
  user id), `exp` (bounded), optional `channels` (names, a trailing `*` is a prefix) and
  `user_info`. Verified against each secret the application accepts right now (the current one,
  and during a rotation's grace period the previous one), so the caller learns which one signed.

Every comparison of a signature is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import jwt
import orjson

ALGORITHM: Final = "HS256"
AUTH_VERSION: Final = "1.0"
SIGNING_PARAMETERS: Final = frozenset(
    {"auth_key", "auth_timestamp", "auth_version", "body_md5", "auth_signature"}
)
"""Query parameters that belong to a Pusher signature, never to an event's data."""
MAX_TOKEN_CHARS: Final = 8192

SignatureFailure = Literal["missing", "key", "version", "timestamp", "body_md5", "signature"]


class BadSignature(Exception):
    """A signed request was refused; `reason` names the rule (always a 401 at the edge)."""

    def __init__(self, reason: SignatureFailure, message: str) -> None:
        super().__init__(message)
        self.reason: SignatureFailure = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Secret:
    """One secret an application accepts now, with the rotation count it belongs to."""

    version: int
    value: str


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def string_to_sign(method: str, path: str, params: Iterable[tuple[str, str]]) -> str:
    """What a Pusher request signature covers (§9): the method, the path and the sorted query."""
    pairs = sorted((key.lower(), value) for key, value in params if key != "auth_signature")
    query = "&".join(f"{key}={value}" for key, value in pairs)
    return f"{method.upper()}\n{path}\n{query}"


def body_md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def sign_request(
    key: str,
    secret: str,
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    body: bytes,
    timestamp: int,
) -> list[tuple[str, str]]:
    """`params` plus the signing parameters, as a Pusher server SDK sends them (tests, docs)."""
    signed = [
        *params,
        ("auth_key", key),
        ("auth_timestamp", str(timestamp)),
        ("auth_version", AUTH_VERSION),
    ]
    if body:
        signed.append(("body_md5", body_md5(body)))
    signed.append(("auth_signature", hmac_hex(secret, string_to_sign(method, path, signed))))
    return signed


def is_signed(params: Iterable[tuple[str, str]]) -> bool:
    """Whether a request carries a Pusher signature (then it must verify; a Bearer is not used)."""
    return any(key == "auth_signature" for key, _ in params)


def verify_request(
    *,
    key: str,
    secrets: Sequence[Secret],
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    body: bytes,
    now: float,
    window_seconds: int,
) -> Secret:
    """The secret that signed this request, or `BadSignature` naming what is wrong."""
    values: dict[str, list[str]] = {}
    for name, value in params:
        values.setdefault(name, []).append(value)

    def single(name: str) -> str:
        found = values.get(name, [])
        if len(found) != 1:
            raise BadSignature("missing", f"{name} must be given once")
        return found[0]

    signature = single("auth_signature")
    if not hmac.compare_digest(single("auth_key").encode(), key.encode()):
        raise BadSignature("key", "auth_key is not this application's key")
    if single("auth_version") != AUTH_VERSION:
        raise BadSignature("version", f"auth_version must be {AUTH_VERSION}")
    timestamp = single("auth_timestamp")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise BadSignature("timestamp", "auth_timestamp must be Unix seconds")
    if abs(int(timestamp) - now) > window_seconds:
        raise BadSignature(
            "timestamp", f"auth_timestamp is more than {window_seconds} s from the server's clock"
        )
    if body or "body_md5" in values:
        given = single("body_md5")
        if not hmac.compare_digest(given.encode(), body_md5(body).encode()):
            raise BadSignature("body_md5", "body_md5 is not the MD5 of the body")
    signed = string_to_sign(method, path, params)
    for secret in secrets:
        if hmac.compare_digest(hmac_hex(secret.value, signed).encode(), signature.encode()):
            return secret
    raise BadSignature("signature", "auth_signature does not match")


def channel_authorization(key: str, secret: str, text: str) -> str:
    """`{key}:{hex HMAC}` over `text` (`{socket_id}:{channel}[:{channel_data}]`, §5)."""
    return f"{key}:{hmac_hex(secret, text)}"


# -- end-user tokens -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenLimits:
    max_lifetime_seconds: int
    max_subject_chars: int
    max_user_info_bytes: int
    max_channels: int
    max_channel_chars: int


@dataclass(frozen=True, slots=True)
class EndUserClaims:
    """A verified end-user token."""

    subject: str
    expires_at: int
    channels: tuple[str, ...] | None
    """Channel names the token allows (a trailing `*`: a prefix); None: every public channel."""
    user_info: dict[str, Any] | None
    secret_version: int
    """Which of the application's secrets signed it (`Secret.version`)."""


class BadToken(Exception):
    """An end-user token was refused; the message says why (for logs and the refusal)."""


def token_app_key(token: str) -> str | None:
    """The `kid` of a token's header when it could be an application's end-user token."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        return None
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return None
    kid = header.get("kid")
    return kid if isinstance(kid, str) and header.get("alg") == ALGORITHM else None


def sign_end_user_token(
    key: str,
    secret: str,
    subject: str,
    *,
    expires_at: int,
    channels: Sequence[str] | None = None,
    user_info: dict[str, Any] | None = None,
) -> str:
    """What an application's backend does for each of its users (tests and docs do it too)."""
    claims: dict[str, Any] = {"sub": subject, "exp": expires_at}
    if channels is not None:
        claims["channels"] = list(channels)
    if user_info is not None:
        claims["user_info"] = user_info
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": key})


def verify_end_user_token(
    token: str, secrets: Sequence[Secret], *, now: float, limits: TokenLimits
) -> EndUserClaims:
    """The claims of a token one of `secrets` signed, or `BadToken` saying why not."""
    payload: dict[str, Any] | None = None
    version = 0
    for secret in secrets:
        try:
            payload = jwt.decode(
                token,
                secret.value,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "exp"], "verify_aud": False, "verify_iss": False},
                leeway=0,
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise BadToken("expired") from None
        except jwt.InvalidTokenError as exc:
            raise BadToken(f"invalid: {exc}") from None
        version = secret.version
        break
    if payload is None:
        raise BadToken("signature: not signed with this application's secret")
    exp = payload["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int) or exp <= now:
        raise BadToken("expired")
    if exp > now + limits.max_lifetime_seconds:
        raise BadToken(f"exp is more than {limits.max_lifetime_seconds} s ahead")
    subject = payload["sub"]
    if not isinstance(subject, str) or not 1 <= len(subject) <= limits.max_subject_chars:
        raise BadToken(f"sub must be a string of 1 to {limits.max_subject_chars} characters")
    return EndUserClaims(
        subject=subject,
        expires_at=exp,
        channels=_channels_claim(payload.get("channels"), limits),
        user_info=_user_info_claim(payload.get("user_info"), limits),
        secret_version=version,
    )


def _channels_claim(value: object, limits: TokenLimits) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > limits.max_channels:
        raise BadToken(f"channels must be a list of at most {limits.max_channels} names")
    names: list[str] = []
    for name in value:
        if not isinstance(name, str) or not 1 <= len(name) <= limits.max_channel_chars:
            raise BadToken("channels must hold channel names")
        names.append(name)
    return tuple(names)


def _user_info_claim(value: object, limits: TokenLimits) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(orjson.dumps(value)) > limits.max_user_info_bytes:
        raise BadToken(f"user_info must be an object of at most {limits.max_user_info_bytes} bytes")
    return value
