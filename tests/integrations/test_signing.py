"""Signing with an application's secret: Pusher's own test vectors (PUSHER_PROTOCOL.md §5, §9),
and end-user tokens (DESIGN §4.2)."""

from __future__ import annotations

import time

import jwt
import pytest

from parley.integrations.signing import (
    BadSignature,
    BadToken,
    Secret,
    TokenLimits,
    body_md5,
    channel_authorization,
    hmac_hex,
    sign_end_user_token,
    sign_request,
    string_to_sign,
    token_app_key,
    verify_end_user_token,
    verify_request,
)

KEY, SECRET = "278d425bdf160c739803", "7ad3773142a6692b25b8"
APP_SECRET = "0123456789abcdef0123456789abcdef01234567"
OTHER_SECRET = "fedcba9876543210fedcba9876543210fedcba98"
LIMITS = TokenLimits(
    max_lifetime_seconds=86_400,
    max_subject_chars=128,
    max_user_info_bytes=1024,
    max_channels=100,
    max_channel_chars=201,
)


def test_the_rest_api_worked_example_signs_as_pusher_documents() -> None:
    body = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
    assert body_md5(body) == "ec365a775a4cd0599faeb73354201b6f"
    params = [
        ("auth_key", KEY),
        ("auth_timestamp", "1353088179"),
        ("auth_version", "1.0"),
        ("body_md5", body_md5(body)),
    ]
    signature = hmac_hex(SECRET, string_to_sign("POST", "/apps/3/events", params))
    assert signature == "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
    signed = sign_request(KEY, SECRET, "POST", "/apps/3/events", [], body, 1353088179)
    assert dict(signed)["auth_signature"] == signature
    verified = verify_request(
        key=KEY,
        secrets=[Secret(1, SECRET)],
        method="POST",
        path="/apps/3/events",
        params=signed,
        body=body,
        now=1353088179 + 599,
        window_seconds=600,
    )
    assert verified.version == 1


@pytest.mark.parametrize(
    ("text", "signature"),
    [
        (
            "1234.1234:private-foobar",
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
        ),
        (
            '1234.1234::user::{"id":"12345"}',
            "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
        ),
        (
            '1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Pusher"}}',
            "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c",
        ),
    ],
)
def test_channel_authorizations_match_pusher_vectors(text: str, signature: str) -> None:
    assert channel_authorization(KEY, SECRET, text) == f"{KEY}:{signature}"


def _verify(params: list[tuple[str, str]], body: bytes = b"", now: float = 1000.0) -> Secret:
    return verify_request(
        key=KEY,
        secrets=[Secret(2, SECRET), Secret(1, OTHER_SECRET)],
        method="POST",
        path="/p",
        params=params,
        body=body,
        now=now,
        window_seconds=600,
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: [(k, v + "0" if k == "name" else v) for k, v in p], "signature"),
        (lambda p: [(k, "x" + v if k == "auth_key" else v) for k, v in p], "key"),
        (lambda p: [(k, "2.0" if k == "auth_version" else v) for k, v in p], "version"),
        (lambda p: [(k, "1601" if k == "auth_timestamp" else v) for k, v in p], "timestamp"),
        (lambda p: [(k, "399" if k == "auth_timestamp" else v) for k, v in p], "timestamp"),
        (lambda p: [(k, "soon" if k == "auth_timestamp" else v) for k, v in p], "timestamp"),
        (lambda p: [(k, v) for k, v in p if k != "auth_signature"], "missing"),
        (lambda p: [*p, ("auth_signature", "00")], "missing"),
    ],
)
def test_a_changed_request_is_refused_naming_the_rule(change: object, reason: str) -> None:
    signed = sign_request(KEY, SECRET, "POST", "/p", [("name", "John")], b"", 1000)
    assert _verify(signed).version == 2
    with pytest.raises(BadSignature) as refused:
        _verify(change(signed))  # type: ignore[operator]
    assert refused.value.reason == reason


def test_body_md5_is_required_with_a_body_and_checked() -> None:
    body = b'{"data": {"a": 1}}'
    signed = sign_request(KEY, SECRET, "POST", "/p", [], body, 1000)
    assert _verify(signed, body).version == 2
    with pytest.raises(BadSignature) as wrong:
        _verify(signed, body.replace(b"1", b"2"))
    assert wrong.value.reason == "body_md5"
    unsigned_body = sign_request(KEY, SECRET, "POST", "/p", [], b"", 1000)
    with pytest.raises(BadSignature) as missing:
        _verify(unsigned_body, body)
    assert missing.value.reason == "missing"


def test_the_previous_secret_still_verifies_and_says_so() -> None:
    signed = sign_request(KEY, OTHER_SECRET, "POST", "/p", [], b"", 1000)
    assert _verify(signed).version == 1


def _token(secret: str = APP_SECRET, **claims: object) -> str:
    payload = {"sub": "u1", "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, secret, algorithm="HS256", headers={"kid": "a" * 20})


def _check(token: str) -> object:
    return verify_end_user_token(token, [Secret(3, APP_SECRET)], now=time.time(), limits=LIMITS)


def test_an_end_user_token_names_its_app_and_verifies_with_its_secret() -> None:
    token = sign_end_user_token(
        "a" * 20,
        APP_SECRET,
        "alice",
        expires_at=int(time.time()) + 60,
        channels=["room-*", "presence-lobby"],
        user_info={"name": "Alice"},
    )
    assert token_app_key(token) == "a" * 20
    claims = verify_end_user_token(token, [Secret(3, APP_SECRET)], now=time.time(), limits=LIMITS)
    assert claims.subject == "alice"
    assert claims.channels == ("room-*", "presence-lobby")
    assert claims.user_info == {"name": "Alice"}
    assert claims.secret_version == 3


@pytest.mark.parametrize(
    ("secret", "claims", "why"),
    [
        (OTHER_SECRET, {}, "signature"),
        (APP_SECRET, {"exp": -1}, "expired"),
        (APP_SECRET, {"exp": 86_400 + 120}, "ahead"),
        (APP_SECRET, {"sub": ""}, "sub"),
        (APP_SECRET, {"sub": "x" * 129}, "sub"),
        (APP_SECRET, {"exp": "soon"}, "invalid"),
        (APP_SECRET, {"channels": "room"}, "channels"),
        (APP_SECRET, {"channels": [1]}, "channels"),
        (APP_SECRET, {"user_info": {"bio": "x" * 1100}}, "user_info"),
        (APP_SECRET, {"user_info": "me"}, "user_info"),
    ],
)
def test_end_user_tokens_that_break_a_rule_are_refused(
    secret: str, claims: dict[str, object], why: str
) -> None:
    exp = claims.get("exp")
    if isinstance(exp, int):  # relative to now: the token is made when the test runs
        claims = {**claims, "exp": int(time.time()) + exp}
    with pytest.raises(BadToken) as refused:
        _check(_token(secret, **claims))
    assert why in str(refused.value)


def test_an_end_user_token_of_another_algorithm_is_refused() -> None:
    token = jwt.encode(
        {"sub": "u", "exp": int(time.time()) + 60}, APP_SECRET * 2, algorithm="HS512"
    )
    with pytest.raises(BadToken, match="invalid"):
        _check(token)


def test_a_token_without_an_app_kid_is_not_an_end_user_token() -> None:
    assert token_app_key("not-a-token") is None
    assert token_app_key(jwt.encode({"sub": "u"}, APP_SECRET, algorithm="HS256")) is None
