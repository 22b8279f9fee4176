"""The raw test client (tests/phoenix_client.py): its codec against our serializers, and its
request/reply plumbing against a tiny in-process server built on those serializers."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketRequest,
    WebSocketServer,
    serve_websocket,
)

from parley.api.socket.core import message as m
from parley.api.socket.core.message import Broadcast, Message, Reply
from parley.api.socket.core.serializer import FrameError
from parley.api.socket.phoenix.serializer import V1, V2, serializer_for_vsn
from tests.phoenix_client import (
    PhoenixClientClosedError,
    auth_token_protocols,
    decode_server_frame,
    encode_client_frame,
    open_phoenix_client,
    socket_url,
)

# -- codec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("join_ref", "ref", "topic", "event", "payload"),
    [
        ("3", "3", "room:1", "phx_join", {"nick": "ada"}),
        (None, "8", "phoenix", "heartbeat", {}),
        ("3", 7, "room:1", "new_msg", {"body": "é ✓"}),
        (None, None, "t", "e", []),
    ],
)
@pytest.mark.parametrize("vsn", [None, "1.0.0", "2.0.0"])
def test_client_frames_decode_on_server(
    vsn: str | None, join_ref: Any, ref: Any, topic: str, event: str, payload: Any
) -> None:
    raw = encode_client_frame(vsn, join_ref, ref, topic, event, payload)
    assert isinstance(raw, str)
    decoded = serializer_for_vsn(vsn).decode_text(raw)
    assert decoded == Message(join_ref, ref, topic, event, payload)


def test_client_binary_push_matches_probe_and_server() -> None:
    raw = encode_client_frame("2.0.0", "3", "7", "room:1", "binup", b"\x01\x02\x03")
    assert raw == bytes.fromhex("00 01 01 06 05 33 37 72 6f 6f 6d 3a 31 62 69 6e 75 70 01 02 03")
    assert isinstance(raw, bytes)
    assert V2.decode_binary(raw) == Message("3", "7", "room:1", "binup", b"\x01\x02\x03")
    with pytest.raises(ValueError, match="V1"):
        encode_client_frame("1.0.0", "3", "7", "room:1", "binup", b"\x01")


@pytest.mark.parametrize("serializer", [V1, V2], ids=["v1", "v2"])
@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            m.reply_ok(Message("3", "4", "t", "e", {}), {"id": 1}),
            Message("3", "4", "t", "phx_reply", {"status": "ok", "response": {"id": 1}}),
        ),
        (m.push("3", "t", "typing", {"u": 1}), Message("3", None, "t", "typing", {"u": 1})),
        (Broadcast("t", "new", {"b": 2}), Message(None, None, "t", "new", {"b": 2})),
        (
            m.error_message("t", "3"),
            Message("3", "3", "t", "phx_error", {"reason": "channel_crash"}),
        ),
    ],
)
def test_server_frames_decode_on_client(
    serializer: Any, item: Message | Reply | Broadcast, expected: Message
) -> None:
    frame = serializer.encode(item)
    decoded = decode_server_frame(serializer.vsn, frame.text())
    if serializer is V1:  # V1 server frames carry no join_ref
        expected = Message(None, expected.ref, expected.topic, expected.event, expected.payload)
    assert decoded == expected


def test_server_binary_frames_decode_on_client() -> None:
    push = V2.encode_push(m.push("3", "room:1", "bin_push", b"\x07"))
    assert decode_server_frame("2.0.0", push.data) == Message(
        "3", None, "room:1", "bin_push", b"\x07"
    )
    reply = V2.encode_reply(Reply("3", "9", "room:1", "ok", b"\x01"))
    assert decode_server_frame("2.0.0", reply.data) == Message(
        "3", "9", "room:1", "phx_reply", {"status": "ok", "response": b"\x01"}
    )
    broadcast = V2.fastlane(Broadcast("room:1", "blob", b"\x02"))
    assert decode_server_frame("2.0.0", broadcast.data) == Message(
        None, None, "room:1", "blob", b"\x02"
    )


def test_auth_token_offer_matches_probe() -> None:
    assert auth_token_protocols("s3cr3t?tok") == ["phoenix", "base64url.bearer.phx.czNjcjN0P3Rvaw"]


def test_socket_url() -> None:
    assert socket_url("ws://h:1/socket", token="t", params={"a": "b"}, vsn="2.0.0") == (
        "ws://h:1/socket/websocket?a=b&token=t&vsn=2.0.0"
    )
    assert socket_url("ws://h:1/socket/websocket", token=None, params=None, vsn=None) == (
        "ws://h:1/socket/websocket"
    )


# -- plumbing against a tiny server --------------------------------------------------------


async def tiny_server(request: WebSocketRequest) -> None:
    """Just enough of a Phoenix server to exercise the client: built on our serializers."""
    query = parse_qs(urlsplit(request.path).query)
    serializer = serializer_for_vsn(query["vsn"][0] if "vsn" in query else None)
    if query.get("token") == ["bad"]:
        await request.reject(403)
        return
    offered = request.proposed_subprotocols
    ws = await request.accept(subprotocol="phoenix" if "phoenix" in offered else None)
    try:
        while True:
            data = await ws.get_message()
            try:
                msg = (
                    serializer.decode_binary(data)
                    if isinstance(data, bytes)
                    else serializer.decode_text(data)
                )
            except FrameError as error:
                await ws.aclose(error.close_code)
                return
            out: list[Message | Reply | Broadcast] = []
            if msg.is_heartbeat:
                out.append(m.heartbeat_reply(msg.ref))
            elif msg.event == "phx_join":
                out.append(m.reply_ok(msg, {"token": query.get("token", [None])[0]}))
                out.append(m.push(m.effective_join_ref(msg), msg.topic, "welcome", {}))
            elif msg.event == "phx_leave":
                out += [m.reply_ok(msg), m.close_message(msg.topic, msg.join_ref)]
            elif msg.event == "echo":
                out.append(m.reply_ok(msg, msg.payload))
            elif msg.event == "bin":
                out.append(Reply(msg.join_ref, msg.ref, msg.topic, "ok", msg.payload[::-1]))
            elif msg.event == "shout":
                out += [Broadcast(msg.topic, "shout", msg.payload), m.reply_ok(msg)]
            elif msg.event == "close_me":
                await ws.aclose(1012, "restart")
                return
            for item in out:
                frame = serializer.encode(item)
                await ws.send_message(frame.data if frame.binary else frame.text())
    except ConnectionClosed:
        return


@pytest.fixture
async def server_url(nursery: trio.Nursery) -> str:
    server: WebSocketServer = await nursery.start(
        serve_websocket, tiny_server, "127.0.0.1", 0, None
    )
    return f"ws://127.0.0.1:{server.port}/socket"


@pytest.mark.parametrize("vsn", [None, "1.0.0", "2.0.0"])
async def test_join_push_receive_leave(server_url: str, vsn: str | None) -> None:
    async with open_phoenix_client(server_url, token="tok", vsn=vsn) as client:
        assert (await client.heartbeat()).ok
        reply = await client.join("room:1", {"a": 1})
        assert reply.ok
        assert reply.response == {"token": "tok"}
        assert client.join_refs["room:1"] == reply.message.ref
        welcome = await client.receive("welcome", "room:1")
        assert welcome.ref is None
        echoed = await client.push("room:1", "echo", {"x": [1, 2]})
        assert echoed.response == {"x": [1, 2]}
        join_ref = client.join_refs["room:1"]
        if client.is_v2:  # V1 server frames have no join_ref
            assert echoed.message.join_ref == join_ref
        assert (await client.push("room:1", "shout", {"s": 1})).ok
        assert (await client.receive("shout")).payload == {"s": 1}
        left = await client.leave("room:1")
        assert left.ok
        close = await client.receive("phx_close", "room:1")
        assert close.ref == join_ref
        assert "room:1" not in client.join_refs
        await client.expect_nothing(within=0.05)
        if not client.is_v2:
            assert all("join_ref" not in orjson.loads(raw) for raw in client.raw_frames)


async def test_binary_push_and_reply(server_url: str) -> None:
    async with open_phoenix_client(server_url) as client:
        await client.join("room:1")
        reply = await client.push("room:1", "bin", b"\x01\x02\x03")
        assert reply.response == b"\x03\x02\x01"
        assert isinstance(client.raw_frames[-1], bytes)


async def test_raw_frames_and_integer_refs(server_url: str) -> None:
    async with open_phoenix_client(server_url) as client:
        await client.send_text('[null,0,"phoenix","heartbeat",{}]')
        reply = await client.receive("phx_reply", ref=0)
        assert reply.ref == 0
        raw = client.raw_frames[-1]
        assert isinstance(raw, str)
        assert raw.startswith("[null,0,")
        await client.send_text("[1,2]")
        code, _reason = await client.wait_closed()
        assert code == 1007
        with pytest.raises(PhoenixClientClosedError):
            await client.receive("anything")


async def test_server_close_is_reported(server_url: str) -> None:
    async with open_phoenix_client(server_url, auth_token="s3cr3t?tok") as client:
        assert client.ws.subprotocol == "phoenix"
        await client.join("room:1")
        await client.push_nowait("room:1", "close_me")
        assert await client.wait_closed() == (1012, "restart")
        assert client.close_reason == (1012, "restart")


async def test_receive_times_out(server_url: str) -> None:
    async with open_phoenix_client(server_url) as client:
        with pytest.raises(trio.TooSlowError):
            await client.receive("never", timeout=0.05)


async def test_auto_heartbeat_replies_are_swallowed(server_url: str) -> None:
    async with open_phoenix_client(server_url, heartbeat_interval=0.01) as client:
        with trio.fail_after(30):
            while sum(1 for raw in client.raw_frames if "heartbeat" not in str(raw)) < 3:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert client.inbox == []


async def test_refused_upgrade_raises_connection_rejected(server_url: str) -> None:
    with pytest.raises(ConnectionRejected) as info:
        async with open_phoenix_client(server_url, token="bad"):
            pass  # pragma: no cover
    assert info.value.status_code == 403
