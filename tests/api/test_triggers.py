"""The trigger API (DESIGN §4.2, docs/integrations.md) over a real server, real sockets and the
store: the seed's flow, Pusher-signed triggers, where events go, and every refusal of the issue's
"Bad input" list, each delivering nothing."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import orjson
import pytest
import trio

from parley.integrations.signing import sign_request
from tests.api.account_helpers import bearer
from tests.api.conftest import register
from tests.api.integration_helpers import App, enroll, new_app
from tests.phoenix_client import PhoenixClient, open_phoenix_client

if TYPE_CHECKING:
    import httpx

    from parley.service import RunningServer


def socket_base(server: RunningServer) -> str:
    return server.base_url.replace("http://", "ws://") + "/socket"


async def api_jwt(client: httpx.AsyncClient, account_headers: dict[str, str]) -> str:
    """The seed's way in: an API token, exchanged form-encoded at POST /api/session."""
    token = await client.post("/api/tokens", json={"name": "backend"}, headers=account_headers)
    assert token.status_code == 201, token.text
    session = await client.post("/api/session", data={"token": token.json()["token"]})
    assert session.status_code == 200, session.text
    jwt: str = session.json()["jwt"]
    return jwt


async def joined(client: PhoenixClient, *topics: str) -> None:
    for topic in topics:
        reply = await client.join(topic)
        assert reply.ok, (topic, reply.response)


async def test_the_seeds_flow_reaches_phoenix_sockets_and_direct_events_one_user(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    jwt = await api_jwt(client, app.admin.headers)
    listed = await client.get(f"/api/organizations/{app.slug}/applications", headers=bearer(jwt))
    assert listed.status_code == 200
    [entry] = listed.json()["data"]
    assert {k: entry[k] for k in ("name", "id", "archived_at", "app_secret", "app_key")} == {
        "name": "Test App",
        "id": app.id,
        "archived_at": None,
        "app_secret": app.secret,
        "app_key": app.key,
    }
    url = socket_base(server)
    async with (
        open_phoenix_client(url, token=app.end_user_token("akitaonrails")) as akita,
        open_phoenix_client(url, token=app.end_user_token("someone")) as other,
    ):
        await joined(akita, f"app:{app.key}", f"app:{app.key}:user:akitaonrails")
        await joined(other, f"app:{app.key}", f"app:{app.key}:user:someone")
        broadcast = await client.post(
            f"{app.event_path('new_message')}?name=John&message=Hello", headers=bearer(jwt)
        )
        assert broadcast.status_code == 202, broadcast.text
        assert broadcast.json() == {
            "event": "new_message",
            "channel": f"app:{app.key}",
            "channels": [f"app:{app.key}"],
        }
        for socket in (akita, other):
            got = await socket.receive("new_message", f"app:{app.key}")
            assert got.payload == {"name": "John", "message": "Hello"}
        direct = await client.post(
            f"{app.event_path('new_message')}?name=John&message=HelloWorld&uid=akitaonrails"
            "&direct=true",
            headers=bearer(jwt),
        )
        assert direct.status_code == 202, direct.text
        got = await akita.receive("new_message", f"app:{app.key}:user:akitaonrails")
        assert got.payload == {"name": "John", "message": "HelloWorld"}
        # A broadcast after it: once `other` has it, the direct event (published first, on the
        # same socket's ordered stream) would have been before it.
        after = await client.post(f"{app.event_path('after')}?n=1", headers=bearer(jwt))
        assert after.status_code == 202
        await other.receive("after", f"app:{app.key}")
        assert not [m for m in other.inbox if m.event == "new_message"]


async def nothing_but(
    socket: PhoenixClient, client: httpx.AsyncClient, app: App, topic: str
) -> None:
    """Deliver a marker event to `topic` (signed) and check it is the only event the socket got:
    whatever was refused before it delivered nothing (one socket's frames arrive in order)."""
    channel = topic.removeprefix(f"app:{app.key}").removeprefix(":")
    if channel.startswith("user:"):
        params = [("uid", channel.removeprefix("user:")), ("direct", "true")]
    else:
        params = [("channel", channel)] if channel else []
    marker = await client.post(app.signed_url("marker", [*params, ("n", "1")]))
    assert marker.status_code == 202, marker.text
    await socket.receive("marker", topic)
    events = [m.event for m in socket.inbox if not m.event.startswith(("phx_", "presence_"))]
    assert events == [], events


async def test_a_pusher_signed_trigger_is_accepted_and_one_changed_byte_is_401(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    async with open_phoenix_client(socket_base(server), token=app.end_user_token("u1")) as end:
        await joined(end, f"app:{app.key}:orders")
        body = orjson.dumps({"channel": "orders", "data": {"id": 7, "state": "paid"}})
        url = app.signed_url("order", body=body)
        json_type = {"content-type": "application/json"}
        accepted = await client.post(url, content=body, headers=json_type)
        assert accepted.status_code == 202, accepted.text
        got = await end.receive("order", f"app:{app.key}:orders")
        assert got.payload == {"id": 7, "state": "paid"}
        changed_body = body.replace(b"paid", b"pai!")
        assert (await client.post(url, content=changed_body, headers=json_type)).status_code == 401
        changed_query = url.replace("auth_timestamp=", "auth_timestamp=0", 1)
        refused = await client.post(changed_query, content=body, headers=json_type)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_signature"
        signature = url.rsplit("auth_signature=", 1)[1]
        flipped = "0" if signature[0] != "0" else "1"
        forged = url.replace(
            f"auth_signature={signature}", f"auth_signature={flipped}{signature[1:]}"
        )
        assert (await client.post(forged, content=body, headers=json_type)).status_code == 401
        await nothing_but(end, client, app, f"app:{app.key}:orders")


async def test_signature_refusals_stale_timestamps_wrong_md5_and_wrong_secrets(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    other = await new_app(client)
    async with open_phoenix_client(socket_base(server), token=app.end_user_token("u1")) as end:
        await joined(end, f"app:{app.key}")
        now = int(time.time())
        for stale in (now - 601, now + 601):
            response = await client.post(app.signed_url("e", [("a", "1")], timestamp=stale))
            assert response.status_code == 401, response.text
            assert "auth_timestamp" in response.json()["error"]["message"]
        body = b'{"data": {"a": 1}}'
        path = app.event_path("e")
        signed = sign_request(app.key, app.secret, "POST", path, [], body, now)
        wrong_md5 = [(k, "0" * 32 if k == "body_md5" else v) for k, v in signed]
        response = await client.post(f"{path}?{urlencode(wrong_md5)}", content=body)
        assert response.status_code == 401
        assert "body_md5" in response.json()["error"]["message"]
        with_other_secret = await client.post(app.signed_url("e", secret=other.secret))
        assert with_other_secret.status_code == 401
        other_key = sign_request(other.key, other.secret, "POST", path, [], b"", now)
        assert (await client.post(f"{path}?{urlencode(other_key)}")).status_code == 401
        await nothing_but(end, client, app, f"app:{app.key}")


async def test_unknown_archived_and_other_organizations_apps_deliver_nothing(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    outsider = await register(client)
    stranger_app = await new_app(client, outsider)
    async with open_phoenix_client(socket_base(server), token=app.end_user_token("u1")) as end:
        await joined(end, f"app:{app.key}")
        unknown = f"/api/organizations/{app.slug}/applications/{'0' * 20}/event/e"
        assert (await client.post(unknown, headers=app.admin.headers)).status_code == 404
        # A member of another organization learns nothing about this one's applications.
        foreign = await client.post(app.event_path("e"), headers=outsider.headers)
        assert foreign.status_code == 404
        # ...and an app's key under another organization's slug is no trigger either.
        crossed = f"/api/organizations/{stranger_app.slug}/applications/{app.key}/event/e"
        assert (await client.post(crossed, headers=outsider.headers)).status_code == 404
        signed_crossed = app.signed_url("e").replace(app.slug, stranger_app.slug, 1)
        assert (await client.post(signed_crossed)).status_code in (401, 404)
        assert (await client.post(app.event_path("e"))).status_code == 401
        await nothing_but(end, client, app, f"app:{app.key}")
        archived = await client.patch(app.base, json={"archived": True}, headers=app.admin.headers)
        assert archived.status_code == 200
        assert archived.json()["archived_at"] is not None
        assert await end.wait_closed() == (1001, "application archived")
    refused = await client.post(app.event_path("e"), headers=app.admin.headers)
    assert refused.status_code == 403
    assert (await client.post(app.signed_url("e"))).status_code == 403


@pytest.mark.parametrize(
    ("params", "body", "status", "field"),
    [
        ([("data", "x" * 10_300)], None, 413, "data"),
        ([], {"data": "x" * 10_241}, 413, "data"),
        ([], {"channels": [f"c{i}" for i in range(101)]}, 422, "channels"),
        ([("channel", "bad channel")], None, 422, "channel"),
        ([("channel", "a:b")], None, 422, "channel"),
        ([("channel", "c" * 201)], None, 422, "channel"),
        ([], {"channel": "ok", "user_id": "u1"}, 422, "channel"),
        ([("uid", "u1")], None, 422, "direct"),
        ([("direct", "true")], None, 422, "uid"),
        ([("direct", "yes"), ("uid", "u1")], None, 422, "direct"),
        ([], {"nonsense": 1}, 422, "nonsense"),
        ([("socket_id", "abc")], None, 422, "socket_id"),
    ],
)
async def test_bad_triggers_are_refused_and_deliver_nothing(
    client: httpx.AsyncClient,
    server: RunningServer,
    params: list[tuple[str, str]],
    body: dict[str, object] | None,
    status: int,
    field: str,
) -> None:
    app = await new_app(client)
    async with open_phoenix_client(socket_base(server), token=app.end_user_token("u1")) as end:
        await joined(end, f"app:{app.key}", f"app:{app.key}:ok", f"app:{app.key}:user:u1")
        content = orjson.dumps(body) if body is not None else b""
        url = app.signed_url("e", params, content)
        response = await client.post(
            url, content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, response.text
        assert field in response.json()["error"].get("fields", {}), response.text
        for topic in (f"app:{app.key}", f"app:{app.key}:ok", f"app:{app.key}:user:u1"):
            await nothing_but(end, client, app, topic)


async def test_reserved_event_names_are_refused(client: httpx.AsyncClient) -> None:
    app = await new_app(client)
    for event in ("phx_close", "presence_diff", "pusher:ping", "x" * 201):
        response = await client.post(app.event_path(event), headers=app.admin.headers)
        assert response.status_code == 422, (event, response.text)


async def test_members_trigger_and_channels_and_data_bodies_reach_their_topics(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    member = await register(client)
    await enroll(client, app, member)
    token = app.end_user_token("u1", channels=["room-*"])
    async with open_phoenix_client(socket_base(server), token=token) as end:
        await joined(end, f"app:{app.key}:room-1", f"app:{app.key}:room-2")
        response = await client.post(
            app.event_path("greet"),
            json={"channels": ["room-1", "room-2"], "data": '{"text": "hi"}'},
            headers=member.headers,
        )
        assert response.status_code == 202, response.text
        assert response.json()["channels"] == [f"app:{app.key}:room-1", f"app:{app.key}:room-2"]
        for room in ("room-1", "room-2"):
            assert (await end.receive("greet", f"app:{app.key}:{room}")).payload == {"text": "hi"}
        plain = await client.post(
            app.event_path("note"), json={"channel": "room-1", "data": 42}, headers=member.headers
        )
        assert plain.status_code == 202
        assert (await end.receive("note", f"app:{app.key}:room-1")).payload == {"data": 42}


async def test_a_trigger_reads_no_database_row_for_its_application(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    directory = server.context.applications
    assert (await client.post(app.signed_url("warm"))).status_code == 202
    reads = directory.reads
    for n in range(20):
        assert (await client.post(app.signed_url("e", [("n", str(n))]))).status_code == 202
    assert directory.reads == reads
    rotated = await client.post(f"{app.base}/secret", headers=app.admin.headers)
    assert rotated.status_code == 200
    assert (await client.post(app.signed_url("e"))).status_code == 202  # old secret: grace
    assert directory.reads == reads + 1  # the rotation was forgotten, and read once again
    new = App(app.slug, app.id, app.key, rotated.json()["app_secret"], app.admin)
    assert (await client.post(new.signed_url("e"))).status_code == 202


async def test_signed_triggers_and_other_requests_share_a_keep_alive_connection(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    """Signed triggers are answered on the listener itself (api.server.triggers); the first other
    request on the connection, pipelined behind them, goes on to Hypercorn unharmed."""
    app = await new_app(client)
    host, _, port = server.base_url.removeprefix("http://").rpartition(":")
    body = b'{"data": {"n": 2}}'
    requests = b"".join(
        (
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            % app.signed_url("one").encode(),
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (app.signed_url("two", body=body).encode(), len(body), body),
            b"POST %s HTTP/1.1\r\nHost: x\r\n\r\n"
            % app.signed_url("three", secret="f" * 40).encode(),
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        )
    )
    served = server.context.triggers
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(requests)
        received = b""
        with trio.fail_after(10):
            while not _complete(received, 4):
                received += await stream.receive_some(65536)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    assert statuses == [b"202", b"202", b"401", b"200"], received
    assert served.directory.cached(app.key) is not None


def _complete(data: bytes, responses: int) -> bool:
    """Whether `data` holds `responses` whole HTTP responses (each with a Content-Length)."""
    for _ in range(responses):
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        length = re.search(rb"(?i)content-length: *(\d+)", data[:head_end])
        end = head_end + 4 + (int(length.group(1)) if length else 0)
        if len(data) < end:
            return False
        data = data[end:]
    return True
