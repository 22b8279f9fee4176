"""Authorization drills (A1, A3, W1, W7): forged tokens, a spent refresh token, foreign origins
and every topic kind tried by every role. The promise: nobody joins or reads what they may not.

Each matrix counts what got through where it must not: every target is 0.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import trio
from jwt.warnings import InsecureKeyLengthWarning
from trio_websocket import ConnectionRejected

from parley.store.listing_records import NewListing
from tests.conftest import TEST_JWT_SECRET
from tests.drills.figures import figure
from tests.drills.live import start_parley
from tests.drills.roles import ROLES, cast_of_roles
from tests.drills.wire import drill_socket
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime, User

OPEN_THROTTLE: dict[str, Any] = {"per_ip_requests_per_hour": 1_000_000}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()), _b64(signature)]
    )


def _hmac_signed(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """An HMAC-SHA256 with the secret over any header: what a verifier that takes the header's
    `alg` and treats the secret as an RSA public key would accept."""
    signing_input = ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode())]
    )
    digest = hmac.new(TEST_JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(digest)}"


def _hs512(payload: dict[str, Any]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # the secret is HS256-sized
        return _signed(payload, alg="HS512")


def _signed(payload: dict[str, Any], **header: Any) -> str:
    algorithm = header.pop("alg", "HS256")
    secret = header.pop("secret", TEST_JWT_SECRET)
    return jwt.encode(payload, secret, algorithm=algorithm, headers={"kid": "k1", **header})


def forged_tokens(live: Realtime, user: User, refresh_token: str) -> dict[str, str]:
    """The 16 forgeries of A1, each built from a genuine access token of `user`."""
    claims: dict[str, Any] = jwt.decode(user.token, options={"verify_signature": False})
    now = int(claims["iat"])
    genuine_header = jwt.get_unverified_header(user.token)

    def but(**changes: Any) -> dict[str, Any]:
        changed = {**claims, **changes}
        return {key: value for key, value in changed.items() if value is not None}

    header_b64, _, signature_b64 = user.token.split(".")
    tampered_payload = _b64(json.dumps(but(role="admin")).encode())
    forged = {
        f"alg_{alg}": _unsigned({**genuine_header, "alg": alg}, but(role="admin"))
        for alg in ("none", "None", "NONE", "nOnE")
    }
    forged |= {
        "hs512_right_secret": _hs512(claims),
        # The classic confusion: RS256 in the header, an HMAC with the secret as the "key".
        "rs256_secret_as_public_key": _hmac_signed({**genuine_header, "alg": "RS256"}, claims),
        "tampered_payload": f"{header_b64}.{tampered_payload}.{signature_b64}",
        "missing_exp": _signed(but(exp=None)),
        "expired": _signed(but(iat=now - 7200, exp=now - 3600)),
        "future_nbf": _signed(but(nbf=now + 3600)),
        "wrong_aud": _signed(but(aud="somebody-else")),
        "wrong_iss": _signed(but(iss="somebody-else")),
        "refresh_token_as_access": refresh_token,
        "unknown_kid": _signed(claims, kid="k9"),
        "rotated_out_kid": _signed(claims, kid="k0", secret="an-old-secret-" + "x" * 40),
        "unknown_crit": _signed(claims, crit=["urn:example:must-understand"]),
    }
    assert len(forged) == 16
    return forged


@pytest.mark.slow
async def test_a1_sixteen_forged_jwts_are_refused_on_rest_and_on_the_socket(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, database_url, auth=OPEN_THROTTLE)
    user = await live.user()
    refresh = live.context.tokens.issue_opaque("refresh").plaintext
    forged = forged_tokens(live, user, refresh)
    rest_accepted: list[str] = []
    socket_accepted: list[str] = []
    async with httpx.AsyncClient(base_url=live.http, timeout=30) as http:
        genuine = await http.get("/api/me", headers={"Authorization": f"Bearer {user.token}"})
        assert genuine.status_code == 200  # the matrix is meaningful: the real token works
        for name, token in forged.items():
            response = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
            if response.status_code != 401:
                rest_accepted.append(f"{name}: {response.status_code}")
            try:
                async with open_phoenix_client(live.url, token=token):
                    socket_accepted.append(name)
            except ConnectionRejected as refused:
                if refused.status_code != 403:
                    socket_accepted.append(f"{name}: refused with {refused.status_code}")
    figure("A1", "forgeries_accepted_rest", f"{len(rest_accepted)}/16", "0/16")
    figure("A1", "forgeries_accepted_socket", f"{len(socket_accepted)}/16", "0/16")
    assert rest_accepted == []
    assert socket_accepted == []


@pytest.mark.slow
async def test_a3_100_races_of_two_refreshes_of_one_token_never_both_win(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, database_url, auth=OPEN_THROTTLE)
    races, wins, losers_not_401 = 100, 0, 0
    async with httpx.AsyncClient(base_url=live.http, timeout=30) as http:
        body = {
            "email": "racer@example.com",
            "password": "correct horse racer",
            "username": "racer",
        }
        registered = await http.post("/api/auth/register", json=body)
        assert registered.status_code == 201, registered.text
        login = {"email": body["email"], "password": body["password"]}
        for _ in range(races):
            session = await http.post("/api/auth/login", json=login)
            assert session.status_code == 200, session.text
            token = session.json()["refresh_token"]
            statuses: list[int] = []

            async def refresh(token: str = token, statuses: list[int] = statuses) -> None:
                answer = await http.post("/api/auth/refresh", json={"refresh_token": token})
                statuses.append(answer.status_code)

            async with trio.open_nursery() as race:
                race.start_soon(refresh)
                race.start_soon(refresh)
            wins += statuses.count(200) == 2
            losers_not_401 += sum(status not in (200, 401) for status in statuses)
    figure("A3", "double_spend_wins", f"{wins}/{races}", f"0/{races}")
    figure("A3", "losers_not_401", losers_not_401, "0")
    assert wins == 0
    assert losers_not_401 == 0


ALLOWED_ORIGIN = "https://allowed.com"
ORIGINS: dict[str, tuple[str | None, bool]] = {
    # name: (Origin header or None for none, whether the upgrade may be accepted)
    "allowed": ("https://allowed.com", True),
    "evil": ("https://evil.com", False),
    "null": ("null", False),
    "allowed_as_prefix": ("https://allowed.com.evil.com", False),
    "sub_domain": ("https://sub.allowed.com", False),
    "other_scheme": ("http://allowed.com", False),
    "other_port": ("https://allowed.com:8443", False),
    "upper_case": ("HTTPS://ALLOWED.COM", True),  # the same origin: scheme and host ignore case
    "trailing_dot": ("https://allowed.com.", False),
    "suffix_without_dot": ("https://notallowed.com", False),
    "none": (None, True),  # native clients send no Origin
}


@pytest.mark.slow
async def test_w1_the_origin_matrix_lets_no_foreign_origin_upgrade(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(
        nursery, tmp_path, database_url, socket={"allowed_origins": [ALLOWED_ORIGIN]}
    )
    user = await live.user()
    disallowed_upgrades: list[str] = []
    allowed_refused: list[str] = []
    for name, (origin, may) in ORIGINS.items():
        try:
            async with open_phoenix_client(live.url, token=user.token, origin=origin):
                accepted = True
        except ConnectionRejected:
            accepted = False
        if accepted and not may:
            disallowed_upgrades.append(name)
        if may and not accepted:
            allowed_refused.append(name)
    figure("W1", "disallowed_upgrades", f"{len(disallowed_upgrades)}/{len(ORIGINS)}", "0")
    figure("W1", "allowed_refused", len(allowed_refused), "0")
    assert disallowed_upgrades == []
    assert allowed_refused == []


def topic_matrix(
    ids: dict[str, str],
) -> dict[str, Callable[[str], bool]]:
    """Topic kind -> which roles may join it (DESIGN §5's table)."""
    signed_in = {"registered", "owner", "other", "moderator", "admin"}
    return {
        f"user:{ids['owner']}": lambda role: role == "owner",
        f"private_chat:{ids['owner']}": lambda role: role == "owner",
        "room:chat": lambda role: role in signed_in,
        f"conversation:{ids['conversation']}": lambda role: role == "owner",
        f"conversation:{uuid.uuid4()}": lambda role: False,
        "conversation:not-a-uuid": lambda role: False,
        "system:general": lambda role: role in signed_in,
        f"listing:{ids['listing']}": lambda role: role in signed_in,
        f"listing:{uuid.uuid4()}": lambda role: False,
        "debug:drill": lambda role: role in signed_in,  # conformance helper; not routed in prod
        "nonsense:topic": lambda role: False,
    }


@pytest.mark.slow
async def test_w7_every_topic_kind_by_every_role_admits_only_whom_it_should(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, database_url)
    cast = await cast_of_roles(live)
    owner, partner = cast.users["owner"], await live.user()
    conversation = await live.group(owner, partner)
    listing = await live.context.stores.listings.create(
        owner.id,
        NewListing(title="A car", make="Volvo", model="240", year=1990, price_cents=100_000),
    )
    matrix = topic_matrix({"owner": str(owner.id), "conversation": str(conversation),
                           "listing": str(listing.id)})  # fmt: skip
    unauthorized_joins: list[str] = []
    refused_rightful: list[str] = []
    unjoined_pushes_delivered = 0
    conversation_topic = f"conversation:{conversation}"
    async with drill_socket(live.url, partner.token) as watcher:
        reply = await watcher.join(conversation_topic)
        assert reply is not None and reply.status == "ok"
        for role in ROLES:
            token = cast.token(role)
            if role in ("anonymous", "banned"):  # not even the socket opens for them
                try:
                    async with open_phoenix_client(live.url, token=token):
                        unauthorized_joins.append(f"{role}: connected")
                except ConnectionRejected:
                    pass
                continue
            assert token is not None
            async with drill_socket(live.url, token) as socket:
                for topic, may in matrix.items():
                    answer = await socket.join(topic)
                    joined = answer is not None and answer.status == "ok"
                    if joined and not may(role):
                        unauthorized_joins.append(f"{role}: {topic}")
                    if may(role) and not joined:
                        refused_rightful.append(f"{role}: {topic} {answer}")
                # Pushes on topics not joined (the conversation, as everybody but its members):
                for event, payload in (("new_msg", {"body": "sneaked in"}), ("typing", {})):
                    if role != "owner":
                        await socket.request(conversation_topic, event, payload)
        # The watcher's heartbeat reply comes after anything delivered to it before.
        await watcher.request("phoenix", "heartbeat", {})
        unjoined_pushes_delivered = watcher.events["new_msg"] + watcher.events["typing"]
    stored = await live.context.database.fetchval(
        "SELECT count(*) FROM messages WHERE conversation_id = $1", conversation
    )
    figure("W7", "unauthorized_joins", len(unauthorized_joins), "0")
    figure("W7", "rightful_joins_refused", len(refused_rightful), "0")
    figure("W7", "unjoined_pushes_delivered", unjoined_pushes_delivered + stored, "0")
    assert unauthorized_joins == []
    assert refused_rightful == []
    assert unjoined_pushes_delivered == 0 and stored == 0
