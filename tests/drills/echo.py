"""Echo servers over Parley's two WebSocket transports, for drill W9 (Autobahn|Testsuite).

Autobahn's fuzzing client tests a WebSocket *implementation*: it sends frames and expects every
text and binary message back as it was sent. Parley's sockets speak Phoenix (or Pusher) above the
frame layer, so for the drill the protocol layer is replaced by an echo, and everything below it
is Parley's own code as `parley serve` runs it:

* `serve_fast_path_echo`: a trio listener whose connections are accepted with wsproto's
  handshake (no authorization: there is no session) and then run exactly as the fast path runs
  a socket: `fast_path.FastConnection` (socket I/O, the `ws_codec.FrameReader` codec, close and
  linger) driven by `transport.pump` with an `OutboundQueue`.
* `serve_asgi_echo`: Hypercorn (configured by `api.server.http.hypercorn_config`, with the
  adaptations `transports.asgi.adapt_hypercorn` makes to it) serving an ASGI app whose
  websocket is an `asgi.AsgiConnection` driven by the same `pump`.

Only the `FrameSink` differs from production: `Echo` puts each inbound frame back on the
outbound queue. Nothing here is reachable from `parley serve`; no setting switches it on.

Case 9 of the suite sends messages of up to 16 MiB, so the echo runs with
`socket.max_frame_bytes` raised to 16 MiB (the product default is 64 KiB) and an outbound queue
big enough for one such message twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any, Final

import trio
from hypercorn.trio import serve
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.utilities import RemoteProtocolError

from parley.api.server.http import hypercorn_config
from parley.api.socket.core.close_codes import CLOSE_TRY_AGAIN_LATER
from parley.api.socket.core.message import Frame
from parley.api.socket.core.outbound import OutboundQueue
from parley.api.socket.core.transport import InboundFrame, pump
from parley.api.socket.transports.asgi import (
    NO_COMPRESSION_MARKER,
    AsgiConnection,
    adapt_hypercorn,
)
from parley.api.socket.transports.fast_path import FastConnection
from parley.config import Settings
from parley.config.sections import ServerSettings, SocketSettings

log = logging.getLogger(__name__)

ECHO_MAX_MESSAGE_BYTES: Final = 16 << 20
"""Autobahn case 9.1.6 / 9.2.6: a 16 MiB text / binary message."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def echo_settings() -> Settings:
    """The product's defaults, on a free loopback port, with case 9's message size."""
    return Settings(
        server=ServerSettings(host="127.0.0.1", port=0, access_log=False),
        socket=dataclasses.replace(
            SocketSettings(),
            max_frame_bytes=ECHO_MAX_MESSAGE_BYTES,
            outbound_max_bytes=2 * ECHO_MAX_MESSAGE_BYTES + 65_536,
        ),
    )


class Echo:
    """A `transport.FrameSink` that sends every data frame back as it came (text as text)."""

    def __init__(self, outbound: OutboundQueue) -> None:
        self.outbound = outbound
        self.echoed = 0

    async def inbound(self, frame: InboundFrame) -> bool:
        data = frame.data
        echoed = Frame(data, binary=True) if isinstance(data, bytes) else Frame(data.encode())
        if not self.outbound.put(echoed):
            # What a session does with a client that outruns its own queue (docs/realtime.md).
            self.outbound.close(CLOSE_TRY_AGAIN_LATER, "echo queue full", discard=True)
            return False
        self.echoed += 1
        return True

    def transport_closed(self) -> None:
        """Nothing to clean up: the pump ends by itself."""


def _outbound(settings: SocketSettings) -> OutboundQueue:
    return OutboundQueue(settings.outbound_max_messages, settings.outbound_max_bytes)


# -- the fast path -------------------------------------------------------------------------


async def _read_head(stream: trio.SocketStream, limit: int = 65_536) -> tuple[bytes, bytes]:
    """The request head and whatever followed it (the listener's `Router._read_head`'s job)."""
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0 and len(data) <= limit:
        chunk = await stream.receive_some(65_536)
        if not chunk:
            return b"", b""
        data += chunk
    if end < 0:
        return b"", b""
    return data[: end + 4], data[end + 4 :]


async def _fast_path_connection(settings: SocketSettings, stream: trio.SocketStream) -> None:
    async with stream:
        with trio.move_on_after(10):
            head, rest = await _read_head(stream)
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.receive_data(head)
            event = next(ws.events(), None)
        except RemoteProtocolError:
            return
        if not isinstance(event, Request):
            return
        outbound = _outbound(settings)

        def fail(code: int, reason: str) -> None:  # fast_path's `_failer`, without a session
            outbound.close(code, reason, discard=True)

        connection = FastConnection(
            stream,
            None,
            buffered=rest,
            max_frame_bytes=settings.max_frame_bytes,
            compressed=False,
            write_stall_seconds=settings.heartbeat_timeout_seconds,
            on_fail=fail,
        )
        connection.write_through(outbound)
        try:  # `fast_path.UpgradedSocket.serve`, with the echo for a session
            await connection.write_raw(ws.send(AcceptConnection()))
            await pump(connection, Echo(outbound), outbound)
            await connection.linger()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError):
            log.debug("echo connection dropped")


async def serve_fast_path_echo(
    settings: Settings, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the fast-path echo until cancelled; started with the `ws://host:port` it is on."""
    listeners = await trio.open_tcp_listeners(settings.server.port, host=settings.server.host)
    host, port = listeners[0].socket.getsockname()[:2]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(
                trio.serve_listeners, partial(_fast_path_connection, settings.socket), listeners
            )
        )
        task_status.started(f"ws://{host}:{port}")


# -- the ASGI transport on Hypercorn -------------------------------------------------------


def asgi_echo_app(settings: SocketSettings) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app whose websocket (any path) echoes through `AsgiConnection` and `pump`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if (await receive()).get("type") != "websocket.connect":
            return
        # As `SocketEndpoint` accepts: compression off unless `socket.compression`.
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if not settings.compression:
            accept["headers"] = [NO_COMPRESSION_MARKER]
        await send(accept)
        outbound = _outbound(settings)
        await pump(AsgiConnection(receive, send), Echo(outbound), outbound)

    return app


async def serve_asgi_echo(
    settings: Settings, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the ASGI echo on Hypercorn until cancelled; started with its `ws://host:port`."""
    adapt_hypercorn(settings.socket.max_frame_bytes)
    config = hypercorn_config(settings)
    config.errorlog = logging.getLogger("hypercorn.error")
    app: Any = asgi_echo_app(settings.socket)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve, app, config, mode="asgi"))
        task_status.started(binds[0].replace("http://", "ws://"))
