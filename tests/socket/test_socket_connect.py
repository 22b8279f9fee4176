"""The upgrade (PHOENIX_PROTOCOL.md §3): refusals before the upgrade, authToken, origins,
compression, and channel tokens, against the real server."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionRejected

from parley.accounts import TokenService
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime
from tests.socket.rawwire import http_request, upgrade_headers


async def refused_status(realtime: Realtime, **kwargs: object) -> int:
    with pytest.raises(ConnectionRejected) as refused:
        async with open_phoenix_client(realtime.url, **kwargs):  # type: ignore[arg-type]
            pass
    status: int = refused.value.status_code
    return status


async def test_missing_bad_expired_revoked_and_banned_tokens_get_403(realtime: Realtime) -> None:
    user = await realtime.user()
    assert await refused_status(realtime) == 403
    assert await refused_status(realtime, token="garbage") == 403
    stale = TokenService(realtime.context.settings.auth, clock=lambda: time.time() - 100_000)
    expired, _ = stale.issue_access(user.id, "registered", 0)
    assert await refused_status(realtime, token=expired) == 403

    revoked = await realtime.user()
    await realtime.context.stores.users.bump_token_version(revoked.id)
    assert await refused_status(realtime, token=revoked.token) == 403

    banned = await realtime.user()
    await realtime.context.stores.users.set_role_and_ban(banned.id, role=None, banned=True)
    assert await refused_status(realtime, token=banned.token) == 403

    assert await refused_status(realtime, token=user.token, vsn="3.0.0") == 403
    counters = realtime.hub.statistics()["counters"]
    assert counters["refused_token"] == 4
    assert counters["refused_no_token"] == 1
    assert counters["refused_vsn"] == 1


async def test_auth_token_subprotocol_selects_phoenix(realtime: Realtime) -> None:
    user = await realtime.user()
    async with open_phoenix_client(realtime.url, auth_token=user.token) as client:
        assert client.ws.subprotocol == "phoenix"
        assert (await client.join(f"user:{user.id}")).ok
    # The url-safe alphabet is accepted too (§3.2 "MAY").
    urlsafe = base64.urlsafe_b64encode(user.token.encode()).decode().rstrip("=")
    answer = await http_request(
        realtime.http,
        "GET",
        "/socket/websocket?vsn=2.0.0",
        upgrade_headers({"Sec-WebSocket-Protocol": f"phoenix, base64url.bearer.phx.{urlsafe}"}),
    )
    assert answer.status == 101
    assert answer.headers["sec-websocket-protocol"] == "phoenix"


async def test_plain_http_on_the_socket_path_gets_400(realtime: Realtime) -> None:
    for method in ("GET", "POST"):
        answer = await http_request(
            realtime.http, method, "/socket/websocket", {"Content-Length": "0"}
        )
        assert answer.status == 400


async def test_permessage_deflate_is_not_negotiated_by_default(realtime: Realtime) -> None:
    user = await realtime.user()
    answer = await http_request(
        realtime.http,
        "GET",
        f"/socket/websocket?vsn=2.0.0&token={user.token}",
        upgrade_headers({"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}),
    )
    assert answer.status == 101
    assert "sec-websocket-extensions" not in answer.headers
    assert "x-parley-permessage-deflate" not in answer.headers


async def test_origin_allow_list(realtime: Realtime) -> None:
    # Default test settings: an empty list allows any origin outside prod. The list form is
    # exercised by the conformance suite (item 5); the matcher itself here.
    from parley.api.socket.core.transport import ConnectRequest
    from parley.api.socket.phoenix.connect import origin_allowed
    from parley.config import SocketSettings

    listed = SocketSettings(allowed_origins=("https://chat.example.com", "//*.example.org"))

    def allowed(origin: str | None, settings: SocketSettings, prod: bool = True) -> bool:
        headers = {"host": "parley.example.net"} | ({"origin": origin} if origin else {})
        return origin_allowed(ConnectRequest("/", "", headers), settings, prod=prod)

    assert allowed(None, listed)
    assert allowed("https://chat.example.com", listed)
    assert not allowed("http://chat.example.com", listed)
    assert allowed("http://example.org:81", listed)
    assert allowed("https://a.b.example.org", listed)
    assert not allowed("https://evil.example", listed)
    assert not allowed("https://example.org.evil.example", listed)
    # A scheme without a port means the scheme's default port (drill W1): another port is
    # another origin. Without a scheme, any port.
    assert allowed("https://chat.example.com:443", listed)
    assert not allowed("https://chat.example.com:8443", listed)
    assert allowed("https://a.example.org:8443", listed)
    assert allowed("https://parley.example.net", SocketSettings())
    assert not allowed("https://evil.example", SocketSettings())
    assert allowed("https://evil.example", SocketSettings(), prod=False)


async def test_channel_token_joins_only_its_conversation(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    other = await realtime.group(alice, bob)
    token = realtime.channel_token(alice, cid)
    async with open_phoenix_client(realtime.url, token=token) as client:
        assert (await client.join(f"conversation:{cid}")).ok
        for topic in (f"conversation:{other}", f"user:{alice.id}", "system:general", "room:chat"):
            reply = await client.join(topic)
            assert (reply.status, reply.response) == ("error", {"reason": "unauthorized"}), topic


async def test_sessions_are_actors_visible_to_operators(realtime: Realtime) -> None:
    user = await realtime.user()
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        assert (await client.join(f"user:{user.id}")).ok
        sessions = [a for a in realtime.runtime.describe_actors() if a["kind"] == "session"]
        assert [s["key"] for s in sessions] == [str(user.id)]
        described = realtime.runtime.describe_actor(str(sessions[0]["id"]))
        assert described is not None
        state: Any = described["state"]
        assert state["channels"] == {f"user:{user.id}": client.join_refs[f"user:{user.id}"]}
        assert state["vsn"] == "2.0.0"
        assert realtime.hub.statistics()["connections"] == 1
    with trio.fail_after(5):
        while any(a["kind"] == "session" for a in realtime.runtime.describe_actors()):  # noqa: ASYNC110 (polling the operator's view)
            await trio.sleep(0.01)
    assert realtime.hub.statistics()["connections"] == 0
