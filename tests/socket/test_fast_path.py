"""The public listener and its two socket transports (docs/fast_path.md), over real sockets.

The first group runs against both transports (`socket.fast_path` true: the wsproto transport on
Parley's own listener; false: Hypercorn + ASGI): connect V1/V2, join, broadcast to another
client, 1009, 400 for plain HTTP on the socket path, 403 before the upgrade, REST with keep-alive
and bodies on the same port. The second group exercises wire details of the wsproto transport
(fragments, pings, masking, UTF-8, compression, pipelined bytes) and the listener's hand-over.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
from hypercorn.trio.tcp_server import TCPServer
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from parley.api.server.listener import ReplayStream, RequestHead
from parley.api.socket.core.message import Frame
from parley.api.socket.transports.ws_codec import frame_bytes, frame_header
from parley.asgi import ParleyAsgi
from parley.config import Settings
from parley.service import RunningServer, serve
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime, socket_settings
from tests.socket.rawwire import http_request, upgrade_headers


@pytest.fixture(params=["wsproto", "asgi"])
def transport(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def settings(transport: str, tmp_path: Path, database_url: str) -> Settings:
    return socket_settings(tmp_path, database_url, socket={"fast_path": transport == "wsproto"})


WSPROTO_ONLY = pytest.mark.parametrize("transport", ["wsproto"])


def fast(realtime: Realtime) -> bool:
    return realtime.context.settings.socket.fast_path


def served_by_wsproto(realtime: Realtime) -> int:
    return int(realtime.hub.statistics()["counters"].get("wsproto_connections", 0))


# -- both transports -----------------------------------------------------------------------


@pytest.mark.parametrize("vsn", [None, "1.0.0", "2.0.0"])
async def test_connect_join_and_heartbeat(realtime: Realtime, vsn: str | None) -> None:
    user = await realtime.user()
    async with open_phoenix_client(realtime.url, token=user.token, vsn=vsn) as client:
        assert (await client.join(f"user:{user.id}")).ok
        assert (await client.heartbeat()).ok
    assert served_by_wsproto(realtime) == (1 if fast(realtime) else 0)


async def test_broadcast_reaches_the_other_member(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    topic = f"conversation:{await realtime.group(alice, bob)}"
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as a,
        open_phoenix_client(realtime.url, token=bob.token, vsn="1.0.0") as b,
    ):
        assert (await a.join(topic)).ok
        assert (await b.join(topic)).ok
        for n in range(20):
            reply = await a.push(topic, "new_msg", {"body": f"hi {n}", "client_id": f"c{n}"})
            assert reply.ok, reply
        for n in range(20):
            message = await b.receive("new_msg", topic)
            assert message.payload["body"] == f"hi {n}"
            assert (await a.receive("new_msg", topic)).payload["body"] == f"hi {n}"


async def test_oversize_frame_closes_with_1009(realtime: Realtime) -> None:
    user = await realtime.user()
    limit = realtime.context.settings.socket.max_frame_bytes
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        await client.send_text(
            orjson.dumps([None, "1", "phoenix", "heartbeat", {"pad": "x" * limit}]).decode()
        )
        code, _ = await client.wait_closed()
        assert code == 1009
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        await client.send_bytes(b"\x00" * (limit + 1))
        code, _ = await client.wait_closed()
        assert code == 1009


async def test_plain_http_on_the_socket_path_gets_400(realtime: Realtime) -> None:
    for method in ("GET", "POST"):
        answer = await http_request(
            realtime.http, method, "/socket/websocket", {"Content-Length": "0"}
        )
        assert answer.status == 400


async def test_a_target_without_a_path_gets_400_not_500(realtime: Realtime) -> None:
    # W10: `GET ?x` reached Quart, which read `path[0]` of an empty path: a 500 and a traceback.
    for target in ("?vsn=2.0.0", "?"):
        answer = await http_request(realtime.http, "GET", target, {})
        assert answer.status == 400, target
        assert answer.headers["content-type"] == "application/json"


async def test_an_upgrade_whose_host_is_not_ascii_is_refused(realtime: Realtime) -> None:
    # W10: wsproto decodes the Host header as IDNA, and a byte over 127 raised UnicodeDecodeError
    # past the handshake's error handling: no answer, and a traceback in the log.
    host, port = realtime.http.split("://", 1)[1].rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        lines = [b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1", b"Host: \xb127"]
        lines += [f"{name}: {value}".encode() for name, value in upgrade_headers().items()]
        await stream.send_all(b"\r\n".join(lines) + b"\r\n\r\n")
        answer = b""
        with trio.fail_after(5):
            while b"\r\n" not in answer:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                answer += chunk
    # The fast path refuses the handshake (400); Hypercorn's h11 takes the header, and the
    # upgrade without a token is refused (403).
    assert answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 403 ")), answer


async def test_refused_connect_is_403_before_the_upgrade(realtime: Realtime) -> None:
    answer = await http_request(
        realtime.http, "GET", "/socket/websocket?vsn=2.0.0&token=garbage", upgrade_headers()
    )
    assert answer.status == 403
    assert "sec-websocket-accept" not in answer.headers
    answer = await http_request(
        realtime.http, "GET", "/socket/websocket?vsn=9.0.0&token=x", upgrade_headers()
    )
    assert answer.status == 403


async def test_rest_on_the_same_port_with_keep_alive_and_bodies(realtime: Realtime) -> None:
    async with httpx.AsyncClient(base_url=realtime.http, timeout=10) as http:
        for _ in range(5):  # one connection, kept alive
            assert (await http.get("/health")).status_code == 200
        body = {"email": "fast@example.com", "password": "correct horse fast", "username": "fast"}
        created = await http.post("/api/auth/register", json=body)
        assert created.status_code == 201, created.text
        login = await http.post(
            "/api/auth/login", json={"email": body["email"], "password": body["password"]}
        )
        assert login.status_code == 200, login.text
        big = await http.post("/api/auth/login", content=b"{" + b" " * 200_000 + b"}")
        assert big.status_code in (400, 422), big.text
        assert (await http.get("/health")).status_code == 200


async def read_response(stream: trio.SocketStream) -> bytes:
    """One HTTP/1.1 response with a Content-Length, read from a kept-alive connection."""
    data = b""
    with trio.fail_after(10):
        while True:
            chunk = await stream.receive_some(65536)
            assert chunk, data
            data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:") and len(rest) >= int(line[15:]):
                    return data


async def test_request_head_and_body_in_one_write_then_a_second_request(
    realtime: Realtime,
) -> None:
    # Head and body in one write: the listener reads past the head and must replay the body to
    # Hypercorn; then more requests on the same (kept-alive) connection. (Hypercorn itself
    # stalls on *pipelined* requests, on either transport, so each waits for the previous.)
    host, port = realtime.http.split("://", 1)[1].rsplit(":", 1)
    body = b'{"email": "nobody@example.com", "password": "wrong wrong wrong"}'
    login = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(login)
        assert (await read_response(stream)).startswith(b"HTTP/1.1 401 ")
        await stream.send_all(health)
        assert (await read_response(stream)).startswith(b"HTTP/1.1 200 ")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:  # a first head that arrives in pieces, each read before the next is sent
        for start in range(0, len(login), 20):
            await stream.send_all(login[start : start + 20])
            await trio.testing.wait_all_tasks_blocked()
        assert (await read_response(stream)).startswith(b"HTTP/1.1 401 ")


async def test_drain_closes_sockets_with_1012_and_stops(
    settings: Settings, nursery: trio.Nursery
) -> None:
    stop = trio.Event()
    done = trio.Event()

    async def run(task_status: trio.TaskStatus[RunningServer]) -> None:
        await serve(settings, stop=stop, task_status=task_status)
        done.set()

    running: RunningServer = await nursery.start(run)
    realtime = Realtime(running)
    user = await realtime.user()
    # (A kept-alive idle HTTP connection holds the drain for the whole grace, on either
    # transport: Hypercorn's behaviour, see docs/fast_path.md; so none is open here.)
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        assert (await client.join(f"user:{user.id}")).ok
        stop.set()
        code, _ = await client.wait_closed(timeout=10)
        assert code == 1012
        with trio.fail_after(5):
            await done.wait()


async def test_asgi_entry_point_under_plain_hypercorn(
    tmp_path: Path, database_url: str, nursery: trio.Nursery
) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    asgi = ParleyAsgi(socket_settings(tmp_path, database_url))
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    stop = trio.Event()
    done = trio.Event()

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        served: Any = asgi  # hypercorn's own ASGI types
        await hypercorn_serve(served, config, shutdown_trigger=stop.wait, task_status=task_status)
        done.set()

    binds: list[str] = await nursery.start(run)
    assert asgi.started
    app = asgi._app
    assert app is not None
    context = app.extensions["parley"]
    stored = await context.stores.users.create(
        email="asgi@example.com",
        username="asgi",
        password_hash="x" * 20,
        role="registered",
        confirmed=True,
    )
    token, _ = context.tokens.issue_access(stored.id, "registered", stored.token_version)
    async with httpx.AsyncClient(base_url=binds[0], timeout=10) as http:
        assert (await http.get("/health")).status_code == 200
    url = "ws://" + binds[0].split("://", 1)[1] + "/socket"
    async with open_phoenix_client(url, token=token) as client:
        assert (await client.join(f"user:{stored.id}")).ok
        assert (await client.heartbeat()).ok
    stop.set()
    with trio.fail_after(30):
        await done.wait()
    assert not asgi.started


# -- the wsproto transport's wire ------------------------------------------------------------


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, (0x80 if mask else 0) | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, length)
    else:
        header = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


class Wire:
    """A WebSocket client that sends hand-made frames and reads with wsproto."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection, response: Any) -> None:
        self.stream = stream
        self.ws = ws
        self.response = response
        self.events: list[Any] = []

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def next_event(self, timeout: float = 5) -> Any:  # noqa: ASYNC109
        with trio.fail_after(timeout):
            while not self.events:
                data = await self.stream.receive_some(65536)
                if not data:
                    return None
                self.ws.receive_data(data)
                self.events.extend(self.ws.events())
        return self.events.pop(0)

    async def message(self) -> Any:
        parts: list[Any] = []
        while True:
            event = await self.next_event()
            if isinstance(event, TextMessage | BytesMessage):
                parts.append(event.data)
                if event.message_finished:
                    if isinstance(event, TextMessage):
                        return orjson.loads("".join(parts))
                    return b"".join(parts)
            elif not isinstance(event, Pong):
                return event


async def open_wire(
    realtime: Realtime, token: str, *, vsn: str = "2.0.0", compress: bool = False
) -> Wire:
    host, port = realtime.http.split("://", 1)[1].rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    ws = WSConnection(ConnectionType.CLIENT)
    extensions = [PerMessageDeflate()] if compress else []
    request = Request(
        host=f"{host}:{port}",
        target=f"/socket/websocket?vsn={vsn}&token={token}",
        extensions=extensions,
    )
    await stream.send_all(ws.send(request))
    wire = Wire(stream, ws, None)
    event = await wire.next_event()
    assert isinstance(event, AcceptConnection | RejectConnection), event
    wire.response = event
    return wire


@pytest.fixture
async def wired(realtime: Realtime) -> AsyncIterator[Wire]:
    assert fast(realtime)
    user = await realtime.user()
    wire = await open_wire(realtime, user.token)
    async with wire.stream:
        yield wire


def heartbeat(ref: str) -> bytes:
    return orjson.dumps([None, ref, "phoenix", "heartbeat", {}])


@WSPROTO_ONLY
async def test_fragmented_message_with_a_ping_in_between(wired: Wire) -> None:
    data = heartbeat("7")
    await wired.send_raw(
        client_frame(0x1, data[:5], fin=False)
        + client_frame(0x9, b"are you there")
        + client_frame(0x0, data[5:12], fin=False)
        + client_frame(0x0, data[12:])
    )
    pong = await wired.next_event()
    assert isinstance(pong, Pong) and pong.payload == b"are you there"
    assert await wired.message() == [
        None,
        "7",
        "phoenix",
        "phx_reply",
        {"status": "ok", "response": {}},
    ]


@WSPROTO_ONLY
async def test_many_frames_in_one_write_and_one_frame_in_many(wired: Wire) -> None:
    await wired.send_raw(b"".join(client_frame(0x1, heartbeat(str(n))) for n in range(50)))
    refs = [(await wired.message())[1] for _ in range(50)]
    assert refs == [str(n) for n in range(50)]
    frame = client_frame(0x1, heartbeat("x" * 300))
    for index in range(len(frame)):
        await wired.send_raw(frame[index : index + 1])
    assert (await wired.message())[1] == "x" * 300


@WSPROTO_ONLY
async def test_frames_written_while_the_client_reads_nothing_arrive_whole_and_in_order(
    realtime: Realtime,
) -> None:
    # Replies are written straight from the session while the writer is idle; once the socket
    # buffers are full a write is partial, the rest goes to the writer, and later frames queue
    # behind it. A client with a tiny receive window that reads nothing for a while forces that.
    user = await realtime.user()
    wire = await open_wire(realtime, user.token)
    async with wire.stream:
        wire.stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        refs = [f"{n:03d}" + "r" * 4000 for n in range(20)]
        await wire.send_raw(b"".join(client_frame(0x1, heartbeat(ref)) for ref in refs))
        # The server (in this process) writes until its socket buffer is full and waits on it.
        await trio.testing.wait_all_tasks_blocked()
        assert [(await wire.message())[1] for _ in refs] == refs


@WSPROTO_ONLY
async def test_binary_push_frame(wired: Wire) -> None:
    # A V2 binary push (kind 0) on an unjoined topic: the error reply proves it was decoded.
    metas = [b"", b"5", b"room:x", b"evt"]
    payload = bytes([0, *map(len, metas)]) + b"".join(metas) + b"\x00\x01\x02"
    await wired.send_raw(client_frame(0x2, payload))
    reply = await wired.message()
    assert reply[1] == "5" and reply[4]["status"] == "error", reply


@WSPROTO_ONLY
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(0x1, b"\xff\xfe not utf-8"), 1007),
        (client_frame(0x1, heartbeat("1"), mask=False), 1002),
        (client_frame(0x9, b"x" * 200), 1002),
        (client_frame(0x0, b"no message to continue"), 1002),
    ],
)
async def test_protocol_errors_close_the_socket(wired: Wire, frame: bytes, code: int) -> None:
    await wired.send_raw(frame)
    event = await wired.message()
    assert isinstance(event, CloseConnection), event
    assert event.code == code


@WSPROTO_ONLY
async def test_client_close_is_answered(wired: Wire) -> None:
    await wired.send_raw(client_frame(0x8, struct.pack("!H", 1000) + b"bye"))
    event = await wired.message()
    assert isinstance(event, CloseConnection) and event.code == 1000
    with trio.fail_after(5):
        assert await wired.stream.receive_some(100) == b""


async def test_compression_only_when_enabled(
    tmp_path: Path, database_url: str, nursery: trio.Nursery
) -> None:
    from functools import partial

    from parley.service import serve

    for enabled in (False, True):
        settings = socket_settings(
            tmp_path / str(enabled), database_url, socket={"compression": enabled}
        )
        running = await nursery.start(partial(serve, settings, handle_signals=False))
        realtime = Realtime(running)
        user = await realtime.user()
        wire = await open_wire(realtime, user.token, compress=True)
        async with wire.stream:
            assert isinstance(wire.response, AcceptConnection)
            negotiated = [e.name for e in wire.response.extensions]
            assert negotiated == (["permessage-deflate"] if enabled else [])
            await wire.send_raw(wire.ws.send(TextMessage(heartbeat("9").decode())))
            assert (await wire.message())[1] == "9"
        assert served_by_wsproto(realtime) == 1


# -- units ---------------------------------------------------------------------------------


def test_frame_headers() -> None:
    assert frame_header(0, False) == b"\x81\x00"
    assert frame_header(125, True) == b"\x82\x7d"
    assert frame_header(126, False) == b"\x81\x7e\x00\x7e"
    assert frame_header(65535, False) == b"\x81\x7e\xff\xff"
    assert frame_header(65536, True) == b"\x82\x7f" + (65536).to_bytes(8, "big")
    for size in (0, 5, 125, 126, 1000, 70_000):
        frame = Frame(b"a" * size)
        assert _server_frame(frame_bytes(frame)) == (0x1, frame.data)
        assert _server_frame(frame_bytes(Frame(frame.data, binary=True))) == (0x2, frame.data)


def _server_frame(data: bytes) -> tuple[int, bytes]:
    opcode = data[0] & 0x0F
    length = data[1] & 0x7F
    start = 2
    if length == 126:
        length, start = int.from_bytes(data[2:4], "big"), 4
    elif length == 127:
        length, start = int.from_bytes(data[2:10], "big"), 10
    assert data[1] & 0x80 == 0  # server frames are not masked
    assert len(data) == start + length
    return opcode, data[start:]


def test_request_head_routing() -> None:
    head = RequestHead.parse(
        b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n"
        b"Connection: Upgrade\r\n\r\n"
    )
    assert head is not None and head.path == b"/socket/websocket" and head.is_websocket_upgrade()
    plain = RequestHead.parse(b"GET /socket/websocket HTTP/1.1\r\nHost: x\r\n\r\n")
    assert plain is not None and not plain.is_websocket_upgrade()
    assert RequestHead.parse(b"PRI * HTTP/2.0\r\n\r\n") is None


async def test_replay_stream_hands_back_what_was_read() -> None:
    left, right = _socket_pair()
    async with left, right:
        replay = ReplayStream(left, b"abcdef")
        assert await replay.receive_some(4) == b"abcd"
        assert await replay.receive_some() == b"ef"
        await right.send_all(b"more")
        assert await replay.receive_some(100) == b"more"
        assert not hasattr(replay, "do_handshake")


async def test_hypercorn_half_closes_without_colliding_with_a_write(realtime: Realtime) -> None:
    # W10: when the client half-closed, Hypercorn's TCPServer sent its EOF through trio's
    # send_eof (which holds the send side across a checkpoint) outside its write lock, and a
    # response written at that moment failed with BusyResourceError, a traceback in the log.
    # `realtime` has installed the app (and so `transports.asgi`'s adaptations of Hypercorn).
    outcomes: list[type[BaseException] | None] = []

    async def write(stream: trio.SocketStream) -> None:
        try:
            await stream.send_all(b"a response")
            outcomes.append(None)
        except (trio.BusyResourceError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
            outcomes.append(type(e))

    for _ in range(20):  # both orders of the close and the write, whichever trio picks
        left, right = _socket_pair()
        async with right:
            server = TCPServer(None, None, None, None, left)  # type: ignore[arg-type]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server._close)
                nursery.start_soon(write, left)
    assert trio.BusyResourceError not in outcomes, outcomes


def _socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    import socket

    a, b = socket.socketpair()
    return (
        trio.SocketStream(trio.socket.from_stdlib_socket(a)),
        trio.SocketStream(trio.socket.from_stdlib_socket(b)),
    )
