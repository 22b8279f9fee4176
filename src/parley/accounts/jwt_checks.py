"""Reading an HS256 JWT defensively: its header, PyJWT's verification, and claims of checked types.

The pieces `accounts.tokens` verifies every token with, ours and app-signed ones alike. The header
is refused before any key is chosen unless it is a plausible compact JWS with `alg` HS256 (so
`alg: none` or an asymmetric algorithm never reaches PyJWT); PyJWT's errors become `InvalidToken`
with a reason; and claims are read with their types checked (PyJWT would accept `"exp": "123"`).
Pure: no I/O.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import jwt

if TYPE_CHECKING:
    from collections.abc import Mapping

    from jwt.types import Options

ALGORITHM: Final = "HS256"
"""The only algorithm issued or accepted, for our tokens and for app-signed ones."""

MAX_TOKEN_CHARS: Final = 8192
"""Longer strings are refused as malformed before any parsing (bounded work per request)."""

MAX_TIMESTAMP: Final = 253_402_300_799  # 9999-12-31T23:59:59Z

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


class InvalidToken(Exception):
    """A token was refused. `reason` is for logs and for the API's error code; always a 401."""

    def __init__(self, reason: InvalidTokenReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: InvalidTokenReason = reason
        self.detail = detail


def timestamp(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def unverified_header(token: object) -> dict[str, Any]:
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


def decode(
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


def int_claim(
    payload: Mapping[str, Any], name: str, *, minimum: int = 0, maximum: int = 2**63 - 1
) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidToken("invalid_claim", f"{name} must be an integer in [{minimum}, {maximum}]")
    return value


def time_claim(payload: Mapping[str, Any], name: str) -> int:
    """A NumericDate we can turn into a `datetime` (so a far-future `exp` cannot overflow)."""
    return int_claim(payload, name, maximum=MAX_TIMESTAMP)


def uuid_claim(payload: Mapping[str, Any], name: str) -> uuid.UUID:
    value = payload.get(name)
    if not isinstance(value, str) or len(value) != 36:
        raise InvalidToken("invalid_claim", f"{name} must be a UUID")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidToken("invalid_claim", f"{name} must be a UUID") from None


def str_claim(payload: Mapping[str, Any], name: str, *, max_chars: int = 255) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise InvalidToken("invalid_claim", f"{name} must be a non-empty string")
    return value
