"""The ASGI transport: `/socket/websocket` served in front of the Quart-Trio app.

`install(app, hub, authorize)` wraps the app's `asgi_app` with `SocketEndpoint`, which handles the
socket path itself and passes every other scope to Quart unchanged. So any ASGI server that serves
the app (Hypercorn under `parley serve`, or another) serves the socket too. The socket does not use
a Quart websocket route on purpose: at the ASGI level we choose the refusal status before the
upgrade (§3.1, ASGI's websocket denial response; plain 403 otherwise), select the `phoenix`
sub-protocol, keep text and binary frames apart exactly as they arrived (Quart hands an empty binary
frame to its handlers as None; here `bytes=b""` stays an empty binary frame), and skip Quart's
per-message context machinery on the hot path.

* HTTP (non-upgrade) requests on the socket path get 400 (§14 item 1), and so does any request
  whose target has no path (`GET ?x`), which Quart cannot route.
* The upgrade asks `authorize` (Phoenix's `PhoenixConnect`: origin, vsn, token); a refusal is
  answered before the upgrade (403), a failure of ours (the database is down) with 503 where the
  server supports the denial-response extension.
* Accepted: a `SessionActor` starts under the sessions supervisor and `pump` runs the
  connection until either side closes it.

Compression: Hypercorn 0.18 always negotiates permessage-deflate when the client offers it (it
reads the offer from the raw request headers, so an ASGI middleware cannot strip it from the
scope). Compression costs CPU for every frame of every connection (a broadcast is compressed
once per recipient, defeating the encode-once fastlane) and tens of KiB of zlib state per
connection, so it is off unless `socket.compression` is true: when off, our accept message
carries a private marker header that a small wrapper around Hypercorn's handshake turns into
"no extensions" for that connection (the header itself is never sent). Other ASGI servers do
whatever they do with compression; under them the marker is an inert response header.
docs/realtime.md explains the trade-off. One more adaptation of Hypercorn is installed with the
app: its connections half-close without colliding with a response being written
(`adapt_hypercorn`, drill W10).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from functools import partial
from typing import TYPE_CHECKING, Any, Final, cast

import orjson
import trio

from parley.api.errors import error_body
from parley.api.socket.core.close_codes import CLOSE_SERVICE_RESTART
from parley.api.socket.core.hub import SocketHub
from parley.api.socket.core.transport import (
    Accepted,
    Authorize,
    ConnectionInfo,
    ConnectRequest,
    Dismissed,
    InboundFrame,
    pump,
)
from parley.api.socket.transports.ws_codec import BoundedDeflate

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from quart_trio import QuartTrio

    from parley.api.socket.core.message import Frame

    Scope = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
    Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

NO_COMPRESSION_MARKER: Final = (b"x-parley-permessage-deflate", b"off")


class AsgiConnection:
    """`transport.Connection` over ASGI's websocket events."""

    __slots__ = ("_receive", "_send", "closed")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.closed = False

    async def receive(self) -> InboundFrame | None:
        while True:
            event = await self._receive()
            kind = event.get("type")
            if kind == "websocket.receive":
                data = event.get("bytes")
                if data is not None:
                    return InboundFrame(bytes(data))
                text = event.get("text")
                # A receive event with neither is an empty binary frame on some servers.
                return InboundFrame(text if text is not None else b"")
            if kind == "websocket.disconnect":
                self.closed = True
                return None

    async def send_frames(self, frames: list[Frame]) -> None:
        send = self._send
        for frame in frames:
            if frame.binary:
                await send({"type": "websocket.send", "bytes": frame.data})
            else:
                await send({"type": "websocket.send", "text": frame.data.decode()})

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:  # the server already tore the connection down
            log.debug("close(%d) after the connection ended", code)


class SocketEndpoint:
    """ASGI middleware: the Phoenix socket at `socket.path`, the Pusher socket under `/app/`
    (when `pusher` is given), everything else to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        hub: SocketHub,
        authorize: Authorize,
        pusher: tuple[str, Authorize] | None = None,
    ) -> None:
        self.app = app
        self.hub = hub
        self._authorize = authorize
        self._pusher = pusher
        """(path prefix, its upgrade decision) of the Pusher protocol's socket."""
        self.path = hub.settings.socket.path
        self.compression = hub.settings.socket.compression

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        path = scope.get("path")
        if path == self.path:
            if kind == "websocket":
                await self._websocket(scope, receive, send, self._authorize)
                return
            if kind == "http":
                await _plain_response(send, 400, b"expected a WebSocket upgrade\n")
                return
        pusher = self._pusher
        if kind == "websocket" and pusher is not None and str(path).startswith(pusher[0]):
            await self._websocket(scope, receive, send, pusher[1])
            return
        if kind in ("http", "websocket") and not str(path).startswith("/"):
            # A target with no path (`GET ?x HTTP/1.1`): Quart reads `path[0]` and answered
            # with a 500 and a traceback (drill W10). Refused here, before Quart sees it.
            await _bad_target(kind, send)
            return
        await self.app(scope, receive, send)

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, authorize: Authorize
    ) -> None:
        hub = self.hub
        connect = await receive()
        if connect.get("type") != "websocket.connect":
            return
        request = _connect_request(scope)
        try:
            decision = await authorize(request)
        except Exception:
            log.exception("socket connect check failed")
            hub.count("refused_unavailable")
            await _deny(scope, send, 503)
            return
        if isinstance(decision, Dismissed):
            hub.count(f"dismissed_{decision.reason}")
            accept: dict[str, Any] = {"type": "websocket.accept"}
            if not self.compression:
                accept["headers"] = [NO_COMPRESSION_MARKER]
            await send(accept)
            dismissed = AsgiConnection(receive, send)
            await dismissed.send_frames(list(decision.frames))
            await dismissed.close(decision.code, decision.reason)
            return
        if not isinstance(decision, Accepted):
            hub.count(f"refused_{decision.reason}")
            await _deny(scope, send, decision.status)
            return
        try:
            wire = decision.wire
            info = ConnectionInfo("websocket", wire.protocol, request.peer)
            handle = await hub.open_session(decision.principal, decision.serializer, info, wire)
        except Exception:
            log.exception("could not start a session")
            hub.count("refused_unavailable")
            await _deny(scope, send, 503)
            return
        try:
            accept = {"type": "websocket.accept"}
            if decision.subprotocol is not None:
                accept["subprotocol"] = decision.subprotocol
            if not self.compression:
                accept["headers"] = [NO_COMPRESSION_MARKER]
            connection = AsgiConnection(receive, send)
            await send(accept)
            await pump(connection, handle, handle.outbound)
        finally:
            with trio.CancelScope(shield=True):
                await hub.end_session(handle)


def _connect_request(scope: Scope) -> ConnectRequest:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = bytes(raw_name).decode("latin-1").lower()
        value = bytes(raw_value).decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    client = scope.get("client")
    return ConnectRequest(
        path=str(scope.get("path", "")),
        query_string=bytes(scope.get("query_string", b"")).decode("latin-1"),
        headers=headers,
        subprotocols=tuple(str(p).strip() for p in scope.get("subprotocols", ()) or ()),
        peer=f"{client[0]}:{client[1]}" if client else None,
    )


async def _deny(scope: Scope, send: Send, status: int) -> None:
    """Refuse before the upgrade: 403 by closing, other statuses through the denial extension."""
    extensions = scope.get("extensions") or {}
    if status != 403 and "websocket.http.response" in extensions:
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-length", b"0")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b""})
        return
    await send({"type": "websocket.close", "code": CLOSE_SERVICE_RESTART})


async def _bad_target(kind: str, send: Send) -> None:
    """400 with the error shape (an upgrade: refused, which ASGI servers answer with 403)."""
    if kind == "websocket":
        await send({"type": "websocket.close", "code": CLOSE_SERVICE_RESTART})
        return
    body = orjson.dumps(error_body("bad_request", "the request target must start with /"))
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _plain_response(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _install_hypercorn_compression_switch(max_message_bytes: int) -> None:
    """Let our accept message turn permessage-deflate off for one connection (see module doc),
    and make Hypercorn's permessage-deflate inflate no message past `max_message_bytes`
    (`BoundedDeflate`: its own inflates a deflate bomb whole, drill W3)."""
    try:
        from hypercorn.protocol import ws_stream
    except ImportError:  # another ASGI server: nothing to adapt
        return
    ws_stream.PerMessageDeflate = partial(BoundedDeflate, max_message_bytes)  # type: ignore[attr-defined,assignment]
    original = ws_stream.Handshake.accept
    if getattr(original, "_parley_switch", False):
        return

    def accept(self: Any, subprotocol: str | None, additional_headers: Any) -> Any:
        headers = list(additional_headers)
        if NO_COMPRESSION_MARKER in headers:
            headers = [h for h in headers if h[0] != NO_COMPRESSION_MARKER[0]]
            self.extensions = None
        return original(self, subprotocol, headers)

    accept._parley_switch = True  # type: ignore[attr-defined]
    ws_stream.Handshake.accept = accept  # type: ignore[method-assign]


def _install_hypercorn_close_without_conflict() -> None:
    """Make Hypercorn's trio `TCPServer` half-close its connections without trio's send-conflict
    check.

    When the client half-closes, `TCPServer._close` sends EOF (`SocketStream.send_eof`, which
    holds the stream's send side across a checkpoint) outside the lock its writes take, so a
    response being written just then failed with `BusyResourceError` and a traceback in the
    log (drill W10, on both transports). Shutting the socket's write side directly has no such
    window: a write in flight ends with the `BrokenResourceError` (or, after the close,
    `ClosedResourceError`) that Hypercorn handles. Waiting for the write instead would hold the
    connection of a client that never reads.
    """
    try:
        from hypercorn.trio.tcp_server import TCPServer
    except ImportError:  # another ASGI server: nothing to adapt
        return
    if getattr(TCPServer._close, "_parley_switch", False):
        return

    async def close(self: Any) -> None:
        stream = self.stream
        sock = getattr(stream, "socket", None)  # TLS streams have none: no half-close there
        if sock is not None and not sock.did_shutdown_SHUT_WR:
            with contextlib.suppress(OSError):  # the peer is gone already
                sock.shutdown(socket.SHUT_WR)
        await stream.aclose()

    close._parley_switch = True  # type: ignore[attr-defined]
    TCPServer._close = close  # type: ignore[method-assign]


def adapt_hypercorn(max_message_bytes: int) -> None:
    """Everything this transport changes in Hypercorn (nothing under another ASGI server)."""
    _install_hypercorn_compression_switch(max_message_bytes)
    _install_hypercorn_close_without_conflict()


def install(
    app: QuartTrio,
    hub: SocketHub,
    authorize: Authorize,
    pusher: tuple[str, Authorize] | None = None,
) -> None:
    """Serve the socket on `app` at `socket.path` (and the Pusher socket under `pusher`'s path
    prefix), in front of its routes."""
    adapt_hypercorn(hub.settings.socket.max_frame_bytes)
    endpoint = SocketEndpoint(cast("ASGIApp", app.asgi_app), hub, authorize, pusher)
    app.asgi_app = cast("Any", endpoint)  # type: ignore[method-assign]
