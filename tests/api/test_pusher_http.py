"""Pusher's HTTP API (docs/pusher.md "HTTP API") over a real server, real sockets and the store,
on both edges (the listener's fast path, and Quart through plain Hypercorn): the PyPI `pusher`
SDK's calls, the counts as one view across Phoenix and Pusher subscribers, and every refusal of
issue 17's "Bad input" list with its status, each delivering nothing."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
import pusher
import pytest
import trio
from pusher.errors import PusherBadAuth, PusherBadRequest, PusherBadStatus, PusherForbidden

from parley.integrations.signing import sign_request
from tests.api.integration_helpers import App, new_app
from tests.conftest import make_settings
from tests.phoenix_client import PhoenixClient, open_phoenix_client
from tests.polling import eventually

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from parley.config import Settings
    from parley.service import RunningServer


@pytest.fixture(params=["fast", "asgi"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, socket={"fast_path": request.param == "fast"})


def sdk(server: RunningServer, app: App, secret: str | None = None) -> pusher.Pusher:
    """The official PyPI client pointed at this server, as docs/pusher.md configures it."""
    host, port = server.base_url.split("://", 1)[1].rsplit(":", 1)
    secret = secret or app.secret
    return pusher.Pusher(str(app.id), app.key, secret, host=host, port=int(port), ssl=False)


async def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """An SDK call (blocking, `requests`) off the event loop."""
    return await trio.to_thread.run_sync(partial(function, *args, **kwargs))


def socket_base(server: RunningServer) -> str:
    return server.base_url.replace("http://", "ws://") + "/socket"


def signed(
    app: App,
    method: str,
    path: str,
    body: bytes = b"",
    params: tuple[tuple[str, str], ...] = (),
    *,
    timestamp: int | None = None,
) -> str:
    """`path` with the query a Pusher server SDK sends (signed by Parley's own signer)."""
    when = int(time.time()) if timestamp is None else timestamp
    query = sign_request(app.key, app.secret, method, path, params, body, when)
    return f"{path}?{urlencode(query)}"


async def joined(socket: PhoenixClient, *topics: str) -> None:
    for topic in topics:
        reply = await socket.join(topic)
        assert reply.ok, (topic, reply.response)


async def nothing_but(socket: PhoenixClient, server: RunningServer, app: App, channel: str) -> None:
    """Trigger a marker on `channel` with the SDK and check it is the only event the socket got:
    whatever was refused before it delivered nothing (one socket's frames arrive in order)."""
    assert await call(sdk(server, app).trigger, channel, "marker", {"n": 1}) == {}
    await socket.receive("marker", f"app:{app.key}:{channel}")
    events = [m.event for m in socket.inbox if not m.event.startswith(("phx_", "presence_"))]
    assert events == [], events


async def test_the_python_sdk_triggers_reach_phoenix_sockets_with_pusher_data(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    token = app.end_user_token("u1", channels=["news", "presence-room"], user_info={"n": "U"})
    async with open_phoenix_client(socket_base(server), token=token) as end:
        await joined(end, f"app:{app.key}:news", f"app:{app.key}:user:u1")
        client_sdk = sdk(server, app)
        assert await call(client_sdk.trigger, ["news", "other"], "update", {"v": 1}) == {}
        got = await end.receive("update", f"app:{app.key}:news")
        assert got.payload == {"v": 1}
        batch = [
            {"channel": "news", "name": "b1", "data": {"i": 1}},
            {"channel": "news", "name": "b2", "data": "plain text"},
        ]
        assert await call(client_sdk.trigger_batch, batch) == {}
        assert (await end.receive("b1", f"app:{app.key}:news")).payload == {"i": 1}
        assert (await end.receive("b2", f"app:{app.key}:news")).payload == {"data": "plain text"}
        assert await call(client_sdk.send_to_user, "u1", "hello", {"to": "u1"}) == {}
        direct = await end.receive("hello", f"app:{app.key}:user:u1")
        assert direct.payload == {"to": "u1"}


async def test_counts_are_one_view_of_phoenix_sockets_and_presence(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    base = socket_base(server)
    allowed = ["news", "presence-room"]
    async with (
        open_phoenix_client(base, token=app.end_user_token("a", channels=allowed)) as one,
        open_phoenix_client(base, token=app.end_user_token("a", channels=allowed)) as two,
        open_phoenix_client(base, token=app.end_user_token("b", channels=allowed)) as three,
    ):
        for socket in (one, two, three):
            await joined(socket, f"app:{app.key}:news", f"app:{app.key}:presence-room")
        client_sdk = sdk(server, app)
        assert await call(client_sdk.channel_info, "news", ["subscription_count"]) == {
            "occupied": True,
            "subscription_count": 3,
        }
        room = await call(client_sdk.channel_info, "presence-room", ["user_count"])
        assert room == {"occupied": True, "user_count": 2}  # two users, three connections
        assert await call(client_sdk.channel_info, "empty") == {"occupied": False}
        users = await call(client_sdk.users_info, "presence-room")
        assert sorted(u["id"] for u in users["users"]) == ["a", "b"]
        assert await call(client_sdk.channels_info) == {
            "channels": {"news": {}, "presence-room": {}}
        }
        assert await call(client_sdk.channels_info, "presence-", ["user_count"]) == {
            "channels": {"presence-room": {"user_count": 2}}
        }
        info = "user_count,subscription_count"
        channels = ["news", "presence-room"]
        body = orjson.dumps({"name": "e", "data": "{}", "channels": channels, "info": info})
        path = f"/apps/{app.id}/events"
        answer = await client.post(signed(app, "POST", path, body), content=body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "channels": {
                "news": {"subscription_count": 3},
                "presence-room": {"user_count": 2, "subscription_count": 3},
            }
        }
        first = {"name": "e", "data": "1", "channel": "news"}
        second = {"name": "e", "data": "2", "channel": "presence-room", "info": "user_count"}
        batch = orjson.dumps({"batch": [first, second]})
        path = f"/apps/{app.id}/batch_events"
        answer = await client.post(signed(app, "POST", path, batch), content=batch)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"batch": [{}, {"user_count": 2}]}
        # Counts follow the sockets: `b` leaves, then `a`'s second connection (`a` stays).
        await three.close()
        await until(client_sdk, "news", 2, ["a"])
        await two.close()
        await until(client_sdk, "news", 1, ["a"])


async def until(
    client_sdk: pusher.Pusher, channel: str, subscriptions: int, users: list[str]
) -> None:
    """Wait (generously) until `channel` has `subscriptions` and presence-room has `users`."""

    async def counted() -> bool:
        info = await call(client_sdk.channel_info, channel, ["subscription_count"])
        present = await call(client_sdk.users_info, "presence-room")
        return bool(
            info["subscription_count"] == subscriptions
            and sorted(u["id"] for u in present["users"]) == users
        )

    await eventually(counted, 10)


async def test_bad_input_gets_its_status_and_delivers_nothing(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    token = app.end_user_token("u1", channels=["news"])
    async with open_phoenix_client(socket_base(server), token=token) as end:
        await joined(end, f"app:{app.key}:news")
        path = f"/apps/{app.id}/events"
        good = orjson.dumps({"name": "e", "data": "{}", "channel": "news"})
        now = int(time.time())

        async def status(url: str, body: bytes = good) -> int:
            response = await client.post(url, content=body)
            assert response.json()["error"]["message"], response.text
            return response.status_code

        # Stale timestamps either way, and a captured request replayed after the window.
        for stale in (now - 601, now + 601):
            assert await status(signed(app, "POST", path, good, timestamp=stale)) == 401
        captured = signed(app, "POST", path, good, timestamp=now - 601)
        assert await status(captured) == 401
        wrong_md5 = signed(app, "POST", path, good).replace("body_md5=", "body_md5=0", 1)
        assert await status(wrong_md5) == 401
        assert await status(signed(app, "POST", path, good), good.replace(b"news", b"newz")) == 401
        unsigned = orjson.dumps({"name": "e", "data": "x", "channel": "news"})
        assert await status(path, unsigned) == 401
        wrong_secret = sdk(server, app, secret="0" * 40)
        with pytest.raises(PusherBadAuth):
            await call(wrong_secret.trigger, "news", "e", {})
        # Bodies: not JSON, eleven events, 101 channels, data one byte over 10 KB.
        for body in (b"not json", b"[1, 2]", b'{"name": "e", "channel": "news"}'):
            assert await status(signed(app, "POST", path, body), body) == 400
        eleven = orjson.dumps({"batch": [{"name": "e", "data": "x", "channel": "news"}] * 11})
        batch_path = f"/apps/{app.id}/batch_events"
        assert await status(signed(app, "POST", batch_path, eleven), eleven) == 400
        many = orjson.dumps({"name": "e", "data": "x", "channels": [f"c{i}" for i in range(101)]})
        assert await status(signed(app, "POST", path, many), many) == 400
        big = orjson.dumps({"name": "e", "data": "x" * 10_241, "channel": "news"})
        assert await status(signed(app, "POST", path, big), big) == 413
        with pytest.raises(PusherBadStatus, match="413"):
            await call(sdk(server, app).trigger, "news", "e", "x" * 10_241)
        # One bad event of a batch refuses the whole batch.
        fine = {"name": "e", "data": "x", "channel": "news"}
        mixed = orjson.dumps({"batch": [fine, {**fine, "channel": "bad:name"}]})
        assert await status(signed(app, "POST", batch_path, mixed), mixed) == 400
        # No such application: 404 (also for an id past PostgreSQL's bigint).
        for app_id in (999_999_999, 10**20):
            unknown = f"/apps/{app_id}/events"
            assert await status(signed(app, "POST", unknown, good), good) == 404
        exact = orjson.dumps({"name": "e", "data": "x" * 10_240, "channel": "news"})
        accepted = await client.post(signed(app, "POST", path, exact), content=exact)
        assert accepted.status_code == 200, accepted.text
        assert (await end.receive("e", f"app:{app.key}:news")).payload == {"data": "x" * 10_240}
        await nothing_but(end, server, app, "news")


async def test_bad_queries_and_an_archived_application(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    client_sdk = sdk(server, app)
    with pytest.raises(PusherBadRequest):
        await call(client_sdk.channels_info, None, ["user_count"])  # not limited to presence-
    with pytest.raises(PusherBadRequest):
        await call(client_sdk.channel_info, "news", ["user_count"])
    with pytest.raises(PusherBadRequest):
        await call(client_sdk.users_info, "news")
    with pytest.raises(PusherBadRequest):
        await call(client_sdk.channel_info, "news", ["nonsense"])
    get = await client.get(signed(app, "GET", f"/apps/{app.id}/channels"))
    assert get.status_code == 200, get.text
    assert get.json() == {"channels": {}}
    archived = await client.patch(f"{app.base}", json={"archived": True}, headers=app.admin.headers)
    assert archived.status_code == 200, archived.text
    with pytest.raises(PusherForbidden):
        await call(client_sdk.trigger, "news", "e", {})
    with pytest.raises(PusherForbidden):
        await call(client_sdk.channels_info)


async def test_terminate_connections_closes_the_users_sockets_at_both_paths(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    base = socket_base(server)
    async with (
        open_phoenix_client(base, token=app.end_user_token("gone")) as gone,
        open_phoenix_client(base, token=app.end_user_token("stays")) as stays,
    ):
        await joined(gone, f"app:{app.key}")
        await joined(stays, f"app:{app.key}")
        # The Python SDK 3.3.4 posts to /users/{id}/terminate_connections (no /apps/{id}).
        assert await call(sdk(server, app).terminate_user_connections, "gone") == {}
        code, _ = await gone.wait_closed()
        assert code == 4009
        # `close_end_user` closed this node's sockets of `gone` before the answer: `stays` is up.
        assert stays.close_reason is None
        assert (await stays.heartbeat()).ok
        path = f"/apps/{app.id}/users/stays/terminate_connections"
        answer = await client.post(signed(app, "POST", path, b"{}"), content=b"{}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {}
        code, _ = await stays.wait_closed()
        assert code == 4009
        short = "/users/x/terminate_connections"
        wrong_key = sign_request("f" * 20, app.secret, "POST", short, (), b"{}", int(time.time()))
        refused = await client.post(f"{short}?{urlencode(wrong_key)}", content=b"{}")
        assert refused.status_code == 401, refused.text
