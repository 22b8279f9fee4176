"""The fast socket transport: a `transport.Connection` over a trio TCP stream (DESIGN §7), the
socket I/O around the sans-IO frame codec of `ws_codec`.

`parley serve` owns the public listener (`parley.api.server.listener`); an upgrade to `socket.path`
comes here with the request head already read, everything else goes to Hypercorn. This module
does the same job as `transports.asgi` (authorize, open a session, run `transport.pump`) with
less machinery between a frame and the socket:

* **Handshake** with wsproto: the head is parsed into a `ConnectRequest`, `authorize`
  decides, a refusal is an HTTP response *before* the upgrade (403, or 400 for a malformed
  upgrade, 503 when our own checks failed), an acceptance selects `phoenix` when offered and
  negotiates permessage-deflate only when `socket.compression` is true.
* **Inbound**: `ws_codec.FrameReader` parses the common case (a whole masked text or binary
  frame) itself and hands every other frame to wsproto whole; a frame above
  `socket.max_frame_bytes` is refused from its header: the session closes with 1009.
* **Outbound**: the writer frames every pending `Frame` (`ws_codec.framed`: unmasked, so the
  same bytes for every recipient) and writes the whole batch with one non-blocking write on the
  socket: no wsproto, no await unless the kernel buffer is full. With permessage-deflate
  negotiated, frames go through wsproto (compressed per connection). docs/fast_path.md has the
  measurements behind these choices.
* **Close** via wsproto; afterwards the server lingers (bounded) for the client's close frame
  before closing TCP, so unread input never turns the close into a reset.
"""

from __future__ import annotations

import errno
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection as FrameConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.extensions import Extension
from wsproto.utilities import RemoteProtocolError

from parley.api.socket.core.close_codes import CLOSE_MESSAGE_TOO_BIG
from parley.api.socket.core.hub import SessionHandle, SocketHub
from parley.api.socket.core.transport import (
    Accepted,
    Authorize,
    ConnectionInfo,
    ConnectRequest,
    Dismissed,
    InboundFrame,
    pump,
)
from parley.api.socket.transports.ws_codec import (
    BoundedDeflate,
    FrameReader,
    ProtocolFailure,
    close_frame_ahead,
    framed,
)

if TYPE_CHECKING:
    from parley.api.socket.core.message import Frame
    from parley.api.socket.core.outbound import OutboundQueue

log = logging.getLogger(__name__)

RECEIVE_BYTES: Final = 65_536
LINGER_SECONDS: Final = 2.0
"""After our close frame: how long to wait for the client's before closing TCP."""


class FastConnection:
    """`transport.Connection` over an accepted WebSocket on a trio socket stream: the socket I/O
    around a `ws_codec.FrameReader`.

    `on_fail(code, reason)` is called when the *transport* decides to close (an oversize frame,
    a protocol error); it must make the session close with that code (the writer then sends the
    close frame after discarding what is queued), and the reader waits for that to happen.
    """

    def __init__(
        self,
        stream: trio.SocketStream,
        protocol: FrameConnection | None,
        *,
        buffered: bytes,
        max_frame_bytes: int,
        compressed: bool,
        write_stall_seconds: float,
        on_fail: Callable[[int, str], None],
    ) -> None:
        self._stream = stream
        self._socket = stream.socket
        self._reader = FrameReader(
            protocol,
            buffered=buffered,
            max_frame_bytes=max_frame_bytes,
            compressed=compressed,
            write_soon=self._write_soon,
        )
        self._compressed = compressed
        self._stall = write_stall_seconds if write_stall_seconds > 0 else math.inf
        self._on_fail = on_fail
        self._request_flush: Callable[[], None] | None = None
        self._writing = False
        self._backlog: list[bytes] = []
        self.broken = False

    # -- reading ----------------------------------------------------------------------------

    async def receive(self) -> InboundFrame | None:
        reader = self._reader
        while True:
            try:
                frame = reader.next_frame()
            except ProtocolFailure as fail:
                self._on_fail(fail.code, fail.reason)
                await trio.sleep_forever()  # the writer sends the close and ends the pump
            if frame is not None:
                if isinstance(frame, InboundFrame):
                    return frame
                return None  # the peer closed
            # A non-blocking read on the descriptor, then trio's readiness wait only if nothing
            # was there: the same as `receive_some` without its layers, whose suspended frames
            # every idle connection would otherwise keep (~1.5 KB each); in this coroutine, not a
            # helper, for the same reason (one suspended frame less per idle connection).
            fd = self._socket.fileno()
            data = b""
            while True:
                try:
                    data = os.read(fd, RECEIVE_BYTES)
                    break
                except BlockingIOError:
                    pass
                except OSError:  # reset by the peer, or closed under us
                    break
                try:
                    await trio.lowlevel.wait_readable(fd)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
            if not data:
                reader.peer_closed = True
                return None
            reader.feed(data)

    # -- writing ----------------------------------------------------------------------------

    async def send_frames(self, frames: list[Frame]) -> None:
        chunks = self._reader.compressed_frames(frames) if self._compressed else framed(frames)
        await self._write(chunks)

    def write_through(self, outbound: OutboundQueue) -> None:
        """Let `outbound` hand frames straight to `write_now` while its writer is idle."""
        if not self._compressed:  # compressed frames go through wsproto, in the writer
            outbound.write_now = self.write_now
        self._request_flush = outbound.request_flush

    def write_now(self, frames: list[Frame]) -> bool:
        """Write `frames` at once with one non-blocking write, if nothing else is being written;
        False leaves them to the writer. A partial write keeps the rest and asks the writer to
        flush."""
        if self._writing or self._backlog or self.broken:
            return False
        chunks = framed(frames)
        data = chunks[0] + chunks[1] if len(chunks) == 2 else b"".join(chunks)
        try:
            sent = _send_nowait(self._socket, data)
        except OSError:
            return False  # the writer meets the same error and ends the connection
        if sent < len(data):
            self._keep_for_writer(data[sent:])
        return True

    def _keep_for_writer(self, rest: bytes) -> None:
        self._backlog.append(rest)
        if self._request_flush is not None:
            self._request_flush()

    async def close(self, code: int, reason: str) -> None:
        reader = self._reader
        if reader.close_sent or self.broken:
            return
        reader.close_sent = True
        data = reader.close_frame(code, reason)
        try:
            await self._write([data])
        except Exception as exc:
            log.debug("close(%d) not written: %r", code, exc)

    def _write_soon(self, data: bytes) -> None:
        """A control frame from the reader (pong, close reply): written now if the socket takes
        it, else queued behind the writer's batch; dropped if the connection is gone."""
        if self.broken:
            return
        if self._writing:
            self._backlog.append(data)  # the writer drains the backlog before it returns
            return
        if self._backlog:
            self._keep_for_writer(data)
            return
        try:
            sent = _send_nowait(self._socket, data)
        except OSError:
            self.broken = True
            return
        if sent < len(data):
            self._keep_for_writer(data[sent:])

    async def write_raw(self, data: bytes) -> None:
        """Bytes that are not a data frame (the 101 response)."""
        await self._write([data])

    async def _write(self, chunks: list[bytes]) -> None:
        """Write `chunks` in order with as few system calls as the kernel allows.

        Normally one non-blocking `write()` writes the whole batch and nothing is awaited. When
        the socket buffer is full, the rest is written as the socket becomes writable (bounded
        by the write-stall timeout: a peer that stops reading for that long is dropped).
        """
        if self.broken:
            raise trio.BrokenResourceError("connection is gone")
        if self._writing:  # only the reader's control frames race the writer: queue behind
            self._backlog.extend(chunks)
            return
        self._writing = True
        try:
            backlog = self._backlog
            if backlog:
                chunks = [*backlog, *chunks]
                backlog.clear()
            while True:
                rest = self._send_some(chunks)
                if rest is None:
                    if not backlog:
                        return
                    chunks = list(backlog)
                    backlog.clear()
                    continue
                chunks = [rest]
                with trio.fail_after(self._stall):
                    await trio.lowlevel.wait_writable(self._socket)
        except BaseException:
            self.broken = True
            raise
        finally:
            self._writing = False

    def _send_some(self, chunks: list[bytes]) -> bytes | None:
        """Send what the socket takes now; None if everything went, else the unsent rest."""
        # Joining a batch and one write() measured faster than writev() of the pieces.
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        sent = _send_nowait(self._socket, data)
        return None if sent == len(data) else data[sent:]

    # -- after the pump ---------------------------------------------------------------------

    async def linger(self) -> None:
        """After our close frame: wait (bounded) for the client's, reading and discarding."""
        reader = self._reader
        if not reader.close_sent or reader.peer_closed or self.broken:
            return
        with trio.move_on_after(LINGER_SECONDS):
            try:
                await self._stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            buffer, skip = reader.buffer, 0
            while True:
                found, buffer, skip = close_frame_ahead(buffer, skip)
                if found:
                    return
                try:
                    data = await self._stream.receive_some(RECEIVE_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                buffer += data


def _send_nowait(sock: trio.socket.SocketType, data: bytes) -> int:
    """One non-blocking write() on a trio socket's descriptor; bytes written (EAGAIN: 0)."""
    fd = sock.fileno()
    if fd < 0:
        raise OSError(errno.EBADF, "socket closed")
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


# -- the upgrade ---------------------------------------------------------------------------


def connect_request(
    request: Request, headers: list[tuple[bytes, bytes]], peer: str | None
) -> ConnectRequest:
    """The `ConnectRequest` of a wsproto handshake (all headers, as the ASGI scope has them)."""
    joined: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    path, _, query = request.target.partition("?")
    return ConnectRequest(
        path=path,
        query_string=query,
        headers=joined,
        subprotocols=tuple(p.strip() for p in request.subprotocols),
        peer=peer,
    )


async def _send_all(stream: trio.SocketStream, data: bytes) -> None:
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        log.debug("client left during the handshake")


@dataclass(frozen=True, slots=True)
class FastPathSocket:
    """What the public listener needs to answer socket upgrades itself."""

    hub: SocketHub
    authorize: Authorize


class UpgradedSocket:
    """An accepted WebSocket with its session, ready to run: what outlives the handshake.

    Nothing of the request (its head, headers, query, the handshake's parser) is kept here, so an
    idle connection holds only its transport state and its session.
    """

    __slots__ = ("_hub", "_response", "connection", "handle")

    def __init__(
        self, connection: FastConnection, hub: SocketHub, handle: SessionHandle, response: bytes
    ) -> None:
        self.connection = connection
        self._hub = hub
        self.handle = handle
        self._response = response
        """The 101 response, written first by `serve`."""

    async def serve(self) -> None:
        """Run the connection until it is over; returns when the caller can close the stream."""
        handle = self.handle
        try:
            await self.connection.write_raw(self._response)
            self._response = b""
            await pump(self.connection, handle, handle.outbound)
            await self.connection.linger()
        except Exception as exc:  # includes groups from pump's nursery; never the listener's
            if _only_disconnects(exc):
                log.debug("socket connection dropped: %r", exc)
            else:
                log.exception("socket connection failed")
        finally:
            with trio.CancelScope(shield=True):
                await self._hub.end_session(handle)


@dataclass(frozen=True, slots=True)
class DismissedSocket:
    """An upgrade accepted only to say why not (`transport.Dismissed`): its frames, then its close
    code (Pusher's refusals are close codes, PUSHER_PROTOCOL.md §1). No session."""

    connection: FastConnection
    response: bytes
    dismissed: Dismissed

    async def serve(self) -> None:
        try:
            await self.connection.write_raw(self.response)
            await self.connection.send_frames(list(self.dismissed.frames))
            await self.connection.close(self.dismissed.code, self.dismissed.reason)
            await self.connection.linger()
        except Exception as exc:
            log.debug("dismissed socket dropped: %r", exc)


async def accept_upgrade(
    stream: trio.SocketStream,
    head: bytes,
    headers: list[tuple[bytes, bytes]],
    rest: bytes,
    socket: FastPathSocket,
    peer: str | None,
) -> UpgradedSocket | DismissedSocket | int:
    """The handshake of one WebSocket upgrade whose request head (`head`) has been read; `rest`
    is what followed it. Returns the accepted socket, or the HTTP status of the refusal once it
    was answered (the caller closes the stream)."""
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.receive_data(head)
        event = next(ws.events(), None)
    except (RemoteProtocolError, UnicodeError) as exc:  # wsproto decodes Host as IDNA
        log.debug("bad upgrade request: %s", exc)
        await _send_all(stream, _plain_response(400, b"bad WebSocket upgrade\n"))
        return 400
    if not isinstance(event, Request):
        await _send_all(stream, _plain_response(400, b"bad WebSocket upgrade\n"))
        return 400
    request = connect_request(event, headers, peer)
    hub = socket.hub
    try:
        decision = await socket.authorize(request)
    except Exception:
        log.exception("socket connect check failed")
        hub.count("refused_unavailable")
        await _send_all(stream, _reject(ws, 503))
        return 503
    settings = hub.settings.socket
    if isinstance(decision, Dismissed):
        hub.count(f"dismissed_{decision.reason}")
        stall, size = settings.heartbeat_timeout_seconds, settings.max_frame_bytes
        dismissed = FastConnection(
            stream, None, buffered=rest, max_frame_bytes=size, compressed=False,
            write_stall_seconds=stall, on_fail=lambda code, reason: None,
        )  # fmt: skip
        return DismissedSocket(dismissed, ws.send(AcceptConnection()), decision)
    if not isinstance(decision, Accepted):
        hub.count(f"refused_{decision.reason}")
        await _send_all(stream, _reject(ws, decision.status))
        return decision.status
    try:
        wire = decision.wire
        info = ConnectionInfo("websocket", wire.protocol, peer)
        handle = await hub.open_session(decision.principal, decision.serializer, info, wire)
    except Exception:
        log.exception("could not start a session")
        hub.count("refused_unavailable")
        await _send_all(stream, _reject(ws, 503))
        return 503
    deflate = BoundedDeflate(settings.max_frame_bytes)
    extensions: list[Extension] = [deflate] if settings.compression else []
    accept = ws.send(AcceptConnection(subprotocol=decision.subprotocol, extensions=extensions))
    compressed = settings.compression and deflate.enabled()
    connection = FastConnection(
        stream,
        # The negotiated compressor lives in wsproto's frame protocol; without one, the protocol
        # is only built if a frame needs it.
        ws.connection if compressed else None,
        buffered=rest,
        max_frame_bytes=settings.max_frame_bytes,
        compressed=compressed,
        write_stall_seconds=settings.heartbeat_timeout_seconds,
        on_fail=_failer(hub, handle),
    )
    connection.write_through(handle.outbound)
    hub.count("wsproto_connections")
    return UpgradedSocket(connection, hub, handle, accept)


_DISCONNECTS = (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError)


def _only_disconnects(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_disconnects(inner) for inner in exc.exceptions)
    return isinstance(exc, _DISCONNECTS)


def _failer(hub: SocketHub, handle: SessionHandle) -> Callable[[int, str], None]:
    def fail(code: int, reason: str) -> None:
        if code == CLOSE_MESSAGE_TOO_BIG:
            hub.count("oversize_frames")
        else:
            hub.count("bad_frames")
        handle.outbound.close(code, reason, discard=True)
        handle.close(code, reason)

    return fail


def _reject(ws: WSConnection, status: int) -> bytes:
    headers = [(b"content-length", b"0"), (b"connection", b"close")]
    return ws.send(RejectConnection(status_code=status, headers=headers, has_body=False))


def _plain_response(status: int, body: bytes) -> bytes:
    reason = {400: b"Bad Request", 403: b"Forbidden", 503: b"Service Unavailable"}.get(
        status, b"Error"
    )
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
    )
