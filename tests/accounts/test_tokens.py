"""TokenService: every way a token can be wrong is a refusal with a reason, never an acceptance."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from parley.accounts.jwt_checks import InvalidToken
from parley.accounts.opaque import hash_opaque, new_opaque_token
from parley.accounts.tokens import AccessClaims, TokenService
from parley.config import AuthSettings, Secret

SECRET = "current-secret-0123456789-abcdefghijklmnop"
OLD_SECRET = "previous-secret-0123456789-abcdefghijklmno"
USER = uuid.UUID("0b7c5d7e-4f0a-4a43-9d55-1b2f1a1d2c3e")
CONVERSATION = uuid.UUID("7f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2f10")


def auth(**overrides: Any) -> AuthSettings:
    base = AuthSettings(jwt_secret=Secret(SECRET), jwt_kid="k2", jwt_previous_keys=())
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def service() -> TokenService:
    return TokenService(auth())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], key: bytes | None, digest: Any) -> str:
    """A compact JWS with any header, HMAC-signed with `key` (or unsigned when `key` is None)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": str(USER),
        "iss": "parley",
        "aud": "parley",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "kind": "access",
        "ver": 0,
        "role": "registered",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def signed(payload: dict[str, Any], *, kid: str = "k2", secret: str = SECRET) -> str:
    return forge({"alg": "HS256", "typ": "JWT", "kid": kid}, payload, secret.encode(), "sha256")


def reason_of(call: Any, *args: Any) -> str:
    with pytest.raises(InvalidToken) as info:
        call(*args)
    return info.value.reason


# -- happy paths ---------------------------------------------------------------------------------


def test_access_token_round_trip(service: TokenService) -> None:
    before = datetime.now(UTC)
    token, expires_at = service.issue_access(USER, "moderator", 3)
    verified = service.verify_access(token)
    assert isinstance(verified, AccessClaims)
    assert verified.user_id == USER
    assert verified.role == "moderator"
    assert verified.token_version == 3
    assert verified.kind == "access"
    assert verified.api_token_id is None
    assert verified.expires_at == expires_at
    assert 899 <= (expires_at - before).total_seconds() <= 901
    assert len(verified.jti) >= 16


def test_access_token_layout(service: TokenService) -> None:
    token, _ = service.issue_access(USER, "admin", 7)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT", "kid": "k2"}
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"sub", "iss", "aud", "iat", "exp", "jti", "kind", "ver", "role"}
    assert payload["exp"] - payload["iat"] == 900
    assert (payload["kind"], payload["ver"], payload["role"]) == ("access", 7, "admin")


def test_each_token_has_its_own_jti(service: TokenService) -> None:
    first, _ = service.issue_access(USER, "registered", 0)
    second, _ = service.issue_access(USER, "registered", 0)
    assert service.verify_access(first).jti != service.verify_access(second).jti


def test_access_ttl_comes_from_config() -> None:
    service = TokenService(auth(access_ttl_seconds=180))
    token, _ = service.issue_access(USER, "registered", 0)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["exp"] - payload["iat"] == 180


def test_api_session_token(service: TokenService) -> None:
    api_token_id = uuid.uuid4()
    token, _ = service.issue_api_session(USER, "registered", 1, api_token_id)
    verified = service.verify_access(token)
    assert verified.kind == "api_session"
    assert verified.api_token_id == api_token_id
    assert verified.token_version == 1
    assert reason_of(lambda t: service.verify_access(t, allow_api_session=False), token) == (
        "wrong_kind"
    )


def test_channel_token_round_trip(service: TokenService) -> None:
    token, expires_at = service.issue_channel(USER, CONVERSATION, 2)
    verified = service.verify_channel(token)
    assert verified.user_id == USER
    assert verified.conversation_id == CONVERSATION
    assert verified.token_version == 2
    assert verified.expires_at == expires_at
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["exp"] - payload["iat"] == 180
    assert payload["cid"] == str(CONVERSATION)
    assert "role" not in payload


# -- kinds never cross -----------------------------------------------------------------------------


def test_channel_token_is_not_an_access_token(service: TokenService) -> None:
    token, _ = service.issue_channel(USER, CONVERSATION, 0)
    assert reason_of(service.verify_access, token) == "wrong_kind"


def test_access_token_is_not_a_channel_token(service: TokenService) -> None:
    token, _ = service.issue_access(USER, "registered", 0)
    assert reason_of(service.verify_channel, token) == "wrong_kind"
    api, _ = service.issue_api_session(USER, "registered", 0, uuid.uuid4())
    assert reason_of(service.verify_channel, api) == "wrong_kind"


def test_token_without_kind_is_refused(service: TokenService) -> None:
    assert reason_of(service.verify_access, signed(claims(kind=None))) == "missing_claim"


def test_unknown_kind_is_refused(service: TokenService) -> None:
    assert reason_of(service.verify_access, signed(claims(kind="refresh"))) == "wrong_kind"


def test_api_session_without_tid_is_refused(service: TokenService) -> None:
    token = signed(claims(kind="api_session"))
    assert reason_of(service.verify_access, token) == "missing_claim"


# -- algorithms ----------------------------------------------------------------------------------


def test_alg_none_is_refused(service: TokenService) -> None:
    for alg in ("none", "None", "NONE"):
        token = forge({"alg": alg, "typ": "JWT", "kid": "k2"}, claims(), None, None)
        assert reason_of(service.verify_access, token) == "algorithm"


def test_alg_none_with_a_signature_is_refused(service: TokenService) -> None:
    token = forge({"alg": "none", "kid": "k2"}, claims(), SECRET.encode(), "sha256")
    assert reason_of(service.verify_access, token) == "algorithm"


def test_hs512_is_refused_even_with_the_right_key(service: TokenService) -> None:
    token = forge({"alg": "HS512", "kid": "k2"}, claims(), SECRET.encode(), "sha512")
    assert reason_of(service.verify_access, token) == "algorithm"


def test_rs256_header_is_refused(service: TokenService) -> None:
    # Algorithm confusion: an "RS256" token HMAC-signed with the shared secret as if it were a key.
    token = forge({"alg": "RS256", "kid": "k2"}, claims(), SECRET.encode(), "sha256")
    assert reason_of(service.verify_access, token) == "algorithm"


def test_missing_alg_is_refused(service: TokenService) -> None:
    token = forge({"typ": "JWT", "kid": "k2"}, claims(), SECRET.encode(), "sha256")
    assert reason_of(service.verify_access, token) == "algorithm"


# -- keys ----------------------------------------------------------------------------------------


def test_wrong_key_is_refused(service: TokenService) -> None:
    token = signed(claims(), secret="another-secret-0123456789-abcdefghijklmnop")
    assert reason_of(service.verify_access, token) == "signature"


def test_tampered_payload_is_refused(service: TokenService) -> None:
    token, _ = service.issue_access(USER, "registered", 0)
    header, _, signature = token.split(".")
    payload = b64(json.dumps(claims(role="admin")).encode())
    assert reason_of(service.verify_access, f"{header}.{payload}.{signature}") == "signature"


def test_unknown_kid_is_refused(service: TokenService) -> None:
    assert reason_of(service.verify_access, signed(claims(), kid="k9")) == "unknown_kid"


def test_missing_kid_is_refused(service: TokenService) -> None:
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(), SECRET.encode(), "sha256")
    assert reason_of(service.verify_access, token) == "unknown_kid"


def test_non_string_kid_is_refused(service: TokenService) -> None:
    token = forge({"alg": "HS256", "kid": ["k2"]}, claims(), SECRET.encode(), "sha256")
    assert reason_of(service.verify_access, token) in {"unknown_kid", "malformed"}


def test_rotation_verifies_previous_key_and_signs_with_current() -> None:
    old = TokenService(auth(jwt_secret=Secret(OLD_SECRET), jwt_kid="k1"))
    old_token, _ = old.issue_access(USER, "registered", 0)
    rotated = TokenService(auth(jwt_previous_keys=(f"k1:{OLD_SECRET}",)))
    assert rotated.current_kid == "k2"
    assert rotated.verify_access(old_token).user_id == USER
    new_token, _ = rotated.issue_access(USER, "registered", 0)
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"
    jwt.decode(new_token, SECRET, algorithms=["HS256"], audience="parley")
    # Once the old key is dropped from the configuration, its tokens die.
    assert reason_of(TokenService(auth()).verify_access, old_token) == "unknown_kid"


def test_kid_of_previous_key_with_current_secret_is_refused() -> None:
    rotated = TokenService(auth(jwt_previous_keys=(f"k1:{OLD_SECRET}",)))
    token = signed(claims(), kid="k1", secret=SECRET)
    assert reason_of(rotated.verify_access, token) == "signature"


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(AuthSettings(jwt_secret=None), id="no-secret"),
        pytest.param(AuthSettings(jwt_secret=Secret("short")), id="short-secret"),
        pytest.param(AuthSettings(jwt_secret=Secret("x" * 31)), id="31-bytes"),
        pytest.param(
            AuthSettings(jwt_secret=Secret(SECRET), jwt_previous_keys=("k0:short",)),
            id="short-previous",
        ),
        pytest.param(
            AuthSettings(jwt_secret=Secret(SECRET), jwt_previous_keys=(OLD_SECRET,)),
            id="previous-without-kid",
        ),
        pytest.param(
            AuthSettings(
                jwt_secret=Secret(SECRET), jwt_kid="k1", jwt_previous_keys=(f"k1:{OLD_SECRET}",)
            ),
            id="duplicate-kid",
        ),
    ],
)
def test_weak_or_broken_key_configuration_is_refused(settings: AuthSettings) -> None:
    with pytest.raises(ValueError, match=r"JWT key|jwt_"):
        TokenService(settings)


def test_32_byte_key_is_enough() -> None:
    TokenService(AuthSettings(jwt_secret=Secret("x" * 32)))


# -- registered claims ---------------------------------------------------------------------------


def test_wrong_audience_is_refused(service: TokenService) -> None:
    assert reason_of(service.verify_access, signed(claims(aud="other"))) == "audience"
    assert reason_of(service.verify_access, signed(claims(aud=["parley", "x"]))) == "audience"


def test_wrong_issuer_is_refused(service: TokenService) -> None:
    assert reason_of(service.verify_access, signed(claims(iss="evil"))) == "issuer"


def test_token_from_a_differently_configured_service_is_refused() -> None:
    other = TokenService(auth(audience="elsewhere"))
    token, _ = other.issue_access(USER, "registered", 0)
    assert reason_of(TokenService(auth()).verify_access, token) == "audience"


def test_expired_token_is_refused(service: TokenService) -> None:
    now = int(time.time())
    token = signed(claims(iat=now - 1000, exp=now - 100))
    assert reason_of(service.verify_access, token) == "expired"


def test_token_expires_by_the_injected_clock() -> None:
    now = [time.time()]
    service = TokenService(auth(access_ttl_seconds=60), clock=lambda: now[0])
    token, _ = service.issue_access(USER, "registered", 0)
    service.verify_access(token)
    now[0] += 61
    assert reason_of(service.verify_access, token) == "expired"


def test_token_issued_in_the_past_is_expired_for_the_real_clock() -> None:
    past = TokenService(auth(), clock=lambda: time.time() - 3600)
    token, _ = past.issue_access(USER, "registered", 0)
    assert reason_of(TokenService(auth()).verify_access, token) == "expired"


def test_token_issued_in_the_future_is_refused(service: TokenService) -> None:
    now = int(time.time())
    token = signed(claims(iat=now + 3600, exp=now + 4000))
    assert reason_of(service.verify_access, token) == "not_yet_valid"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud", "jti", "ver", "role"])
def test_missing_claim_is_refused(service: TokenService, claim: str) -> None:
    assert reason_of(service.verify_access, signed(claims(**{claim: None}))) == "missing_claim"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", "99999999999"),
        ("exp", 99999999999.5),
        ("exp", True),
        ("exp", 10**20),
        ("iat", "0"),
        ("ver", "1"),
        ("ver", -1),
        ("ver", True),
        ("sub", "not-a-uuid"),
        ("sub", 12),
        ("jti", ""),
        ("jti", 5),
        ("role", "root"),
        ("role", ["admin"]),
    ],
)
def test_mistyped_claim_is_refused(service: TokenService, claim: str, value: object) -> None:
    reason = reason_of(service.verify_access, signed(claims(**{claim: value})))
    # PyJWT reads `"exp": true` as 1 (long expired) before our own type check sees it.
    assert reason == ("expired" if value is True and claim == "exp" else "invalid_claim")


def test_channel_token_needs_its_conversation(service: TokenService) -> None:
    token = signed(claims(kind="channel", role=None))
    assert reason_of(service.verify_channel, token) == "missing_claim"
    bad = signed(claims(kind="channel", role=None, cid="nope"))
    assert reason_of(service.verify_channel, bad) == "invalid_claim"


# -- malformed -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.@@@.###",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "x" * 10_000,
        b64(b'{"alg":"HS256","kid":"k2"}') + ".bm90IGpzb24." + b64(b"sig"),
        b64(b"[1,2]") + "." + b64(b"{}") + "." + b64(b"sig"),
    ],
)
def test_malformed_tokens_are_refused(service: TokenService, token: str) -> None:
    assert reason_of(service.verify_access, token) in {"malformed", "algorithm", "signature"}


def test_non_string_token_is_refused(service: TokenService) -> None:
    assert reason_of(service.verify_access, None) == "malformed"


def test_payload_not_an_object_is_refused(service: TokenService) -> None:
    header = b64(json.dumps({"alg": "HS256", "kid": "k2"}).encode())
    payload = b64(b"[1]")
    signature = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    token = f"{header}.{payload}.{b64(signature.digest())}"
    assert reason_of(service.verify_access, token) == "malformed"


def test_crit_header_is_refused(service: TokenService) -> None:
    token = forge(
        {"alg": "HS256", "kid": "k2", "crit": ["exp"]}, claims(), SECRET.encode(), "sha256"
    )
    assert reason_of(service.verify_access, token) == "malformed"


# -- opaque tokens -------------------------------------------------------------------------------


def test_opaque_tokens_are_random_and_hashed() -> None:
    plaintext, digest = new_opaque_token()
    assert len(plaintext) >= 43
    assert digest == hashlib.sha256(plaintext.encode()).digest() == hash_opaque(plaintext)
    assert len(digest) == 32
    assert new_opaque_token()[0] != plaintext
    prefixed, prefixed_digest = new_opaque_token("plt_")
    assert prefixed.startswith("plt_")
    assert prefixed_digest == hash_opaque(prefixed)


def test_hash_opaque_never_raises_on_odd_input() -> None:
    assert len(hash_opaque("\ud800")) == 32


def test_issue_opaque_uses_configured_lifetimes() -> None:
    now = 1_700_000_000.0
    service = TokenService(auth(), clock=lambda: now)
    for purpose, ttl in (("refresh", 4 * 86400), ("password_reset", 3600), ("confirm", 48 * 3600)):
        issued = service.issue_opaque(purpose)  # type: ignore[arg-type]
        assert issued.digest == hash_opaque(issued.plaintext)
        assert issued.expires_at == datetime.fromtimestamp(now + ttl, UTC)


def test_issuing_refuses_bad_input(service: TokenService) -> None:
    with pytest.raises(ValueError, match="role"):
        service.issue_access(USER, "root", 0)
    with pytest.raises(ValueError, match="token_version"):
        service.issue_access(USER, "registered", -1)
