"""The fast socket transport: a `transport.Connection` over a trio TCP stream (DESIGN §7).

`parley serve` owns the public listener (`parley.api.server.listener`); an upgrade to `socket.path`
comes here with the request head already read, everything else goes to Hypercorn. This module
does the same job as `asgi_transport.py` (authorize, open a session, run `transport.pump`) with
less machinery between a frame and the socket:

* **Handshake** with wsproto: the head is parsed into a `ConnectRequest`, `authorize`
  decides, a refusal is an HTTP response *before* the upgrade (403, or 400 for a malformed
  upgrade, 503 when our own checks failed), an acceptance selects `phoenix` when offered and
  negotiates permessage-deflate only when `socket.compression` is true.
* **Inbound**: client frames are parsed here for the common case, a complete, unfragmented,
  masked text or binary frame without extension bits (~4 µs against wsproto's ~28 µs for a
  200-byte frame on the development machine). Every other frame (control frames, fragments,
  compressed frames, protocol errors) is handed to wsproto *whole*, so wsproto never holds a
  partial frame and the two parsers never disagree about where a frame starts. A frame (or a
  fragmented message) above `socket.max_frame_bytes` is refused from its header, before its
  payload is buffered: the session closes with 1009.
* **Outbound**: server frames are unmasked, so a frame's bytes are the same for every recipient.
  The writer frames every pending `Frame` (a 2-10 byte header from a table, then the serializer's
  bytes, which the fastlane already shares between recipients) and writes the whole batch with
  one non-blocking `send` on the socket: no wsproto, no await unless the kernel buffer is full.
  Memoizing the framed bytes per `Frame` was measured and not worth it: building the header
  costs ~0.2 µs, a cache look-up ~0.3 µs (`docs/fast_path.md`).
  With permessage-deflate negotiated, frames go through wsproto (compressed per connection).
* **Close** via wsproto; afterwards the server lingers (bounded) for the client's close frame
  before closing TCP, so unread input never turns the close into a reset.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection as FrameConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.utilities import RemoteProtocolError

from parley.api.socket.core.close_codes import (
    CLOSE_INVALID_DATA,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_PROTOCOL_ERROR,
)
from parley.api.socket.core.hub import SessionHandle, SocketHub
from parley.api.socket.core.transport import Accepted, Authorize, ConnectRequest, InboundFrame, pump

if TYPE_CHECKING:
    from parley.api.socket.core.message import Frame
    from parley.api.socket.core.outbound import OutboundQueue

log = logging.getLogger(__name__)

RECEIVE_BYTES: Final = 65_536
LINGER_SECONDS: Final = 2.0
"""After our close frame: how long to wait for the client's before closing TCP."""

# Server frame headers: FIN + opcode, then the 7-bit length (no mask bit).
_TEXT_HEADERS: Final = tuple(bytes((0x81, n)) for n in range(126))
_BINARY_HEADERS: Final = tuple(bytes((0x82, n)) for n in range(126))
_MEDIUM: Final = struct.Struct("!BBH")
_LARGE: Final = struct.Struct("!BBQ")

_OP_CONTINUATION, _OP_TEXT, _OP_BINARY, _OP_CLOSE = 0x0, 0x1, 0x2, 0x8


def frame_header(length: int, binary: bool) -> bytes:
    """The header of one unfragmented, unmasked server data frame of `length` payload bytes."""
    if length < 126:
        return _BINARY_HEADERS[length] if binary else _TEXT_HEADERS[length]
    opcode = 0x82 if binary else 0x81
    if length < 65_536:
        return _MEDIUM.pack(opcode, 126, length)
    return _LARGE.pack(opcode, 127, length)


def frame_bytes(frame: Frame) -> bytes:
    """One `Frame` as a complete server WebSocket frame (tests and benchmarks use this)."""
    return frame_header(len(frame.data), frame.binary) + frame.data


def _unmask(payload: bytes, mask: bytes) -> bytes:
    length = len(payload)
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


class _Fail(Exception):
    """The client broke the protocol or a limit; the connection closes with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WsprotoConnection:
    """`transport.Connection` over an accepted WebSocket on a trio socket stream.

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
        self._protocol = protocol
        """wsproto's frame protocol, built on first use: most connections only ever carry the
        frames parsed here, and an idle connection should not hold its buffers."""
        self._buffer = buffered
        self._max = max_frame_bytes
        self._compressed = compressed
        self._stall = write_stall_seconds if write_stall_seconds > 0 else math.inf
        self._on_fail = on_fail
        self._request_flush: Callable[[], None] | None = None
        self._parts: list[Any] = []
        """Parts of a fragmented (or compressed) message wsproto is assembling."""
        self._message_bytes = 0
        self._fragmented = False
        self._writing = False
        self._backlog: list[bytes] = []
        self.close_sent = False
        self.peer_closed = False
        self.broken = False

    # -- reading ----------------------------------------------------------------------------

    async def receive(self) -> InboundFrame | None:
        while True:
            try:
                frame = self._next_frame()
            except _Fail as fail:
                self._on_fail(fail.code, fail.reason)
                await trio.sleep_forever()  # the writer sends the close and ends the pump
            if frame is not None:
                if isinstance(frame, InboundFrame):
                    return frame
                return None  # the peer closed
            if not await self._fill():
                self.peer_closed = True
                return None

    async def _fill(self) -> bool:
        # A non-blocking read on the descriptor, then trio's readiness wait only if nothing was
        # there: the same as `receive_some` without its layers, whose suspended frames every idle
        # connection would otherwise keep (~1.5 KB each).
        fd = self._socket.fileno()
        while True:
            try:
                data = os.read(fd, RECEIVE_BYTES)
                break
            except BlockingIOError:
                pass
            except OSError:  # reset by the peer, or closed under us
                return False
            try:
                await trio.lowlevel.wait_readable(fd)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False
        if not data:
            return False
        self._buffer = self._buffer + data if self._buffer else data
        return True

    def _next_frame(self) -> InboundFrame | bool | None:
        """The next complete data frame from the buffer; False when the peer closed; None when
        more bytes are needed. Raises `_Fail` to close the connection."""
        while True:
            buffer = self._buffer
            if len(buffer) < 2:
                return None
            header = _frame_header(buffer)
            if header is None:
                return None
            first = buffer[0]
            masked = buffer[1] & 0x80
            opcode, start, length = header
            if opcode in (_OP_CONTINUATION, _OP_TEXT, _OP_BINARY):
                if opcode != _OP_CONTINUATION:
                    self._message_bytes = 0
                if self._message_bytes + length > self._max:
                    raise _Fail(CLOSE_MESSAGE_TOO_BIG, "frame too large")
            elif length > 125:
                raise _Fail(CLOSE_PROTOCOL_ERROR, "control frame too long")
            end = start + length
            if len(buffer) < end:
                return None
            self._buffer = buffer[end:]
            if masked and not self._fragmented and (first == 0x81 or first == 0x82):
                # The common case: a whole masked text/binary frame with no extension bits.
                payload = _unmask(buffer[start:end], buffer[start - 4 : start])
                if first == 0x82:
                    return InboundFrame(payload)
                try:
                    return InboundFrame(payload.decode())
                except UnicodeDecodeError:
                    raise _Fail(CLOSE_INVALID_DATA, "invalid UTF-8") from None
            if opcode in (_OP_CONTINUATION, _OP_TEXT, _OP_BINARY):
                self._message_bytes += length
                self._fragmented = not first & 0x80
            result = self._wsproto_frame(buffer[:end])
            if result is not None:
                return result

    def _wsproto_frame(self, raw: bytes) -> InboundFrame | bool | None:
        """Hand one complete frame to wsproto; a finished data message, False on close, or
        None (a control frame or a fragment was handled)."""
        ws = self._wsproto()
        ws.receive_data(raw)
        result: InboundFrame | bool | None = None
        for event in ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                self._parts.append(event.data)
                if not event.message_finished:
                    continue
                parts, self._parts = self._parts, []
                if isinstance(event, TextMessage):
                    text = "".join(parts)
                    size = len(text.encode()) if self._compressed else 0
                    result = InboundFrame(text)
                else:
                    data = b"".join(parts)
                    size = len(data)
                    result = InboundFrame(data)
                if size > self._max:  # a compressed message that inflated past the limit
                    raise _Fail(CLOSE_MESSAGE_TOO_BIG, "frame too large")
            elif isinstance(event, Ping):
                self._write_soon(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if ws.state is ConnectionState.REMOTE_CLOSING:
                    self.peer_closed = True
                    if not self.close_sent:
                        self.close_sent = True
                        self._write_soon(ws.send(event.response()))
                    return False
                if ws.state is ConnectionState.CLOSED:  # the answer to our close
                    self.peer_closed = True
                    return False
                raise _Fail(event.code, event.reason or "protocol error")  # wsproto's ParseFailed
        return result

    # -- writing ----------------------------------------------------------------------------

    async def send_frames(self, frames: list[Frame]) -> None:
        if self._compressed:
            ws = self._wsproto()
            chunks = [
                ws.send(BytesMessage(frame.data) if frame.binary else TextMessage(frame.text()))
                for frame in frames
            ]
        else:
            chunks = _framed(frames)
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
        chunks = _framed(frames)
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
        if self.close_sent or self.broken:
            return
        self.close_sent = True
        ws = self._wsproto()
        if ws.state is ConnectionState.OPEN:
            data = ws.send(CloseConnection(code, reason))
        else:  # wsproto refused the frame (ParseFailed left it OPEN, but be safe)
            encoded = struct.pack("!H", code) + reason.encode()[:123]
            data = bytes((0x88, len(encoded))) + encoded
        try:
            await self._write([data])
        except Exception as exc:
            log.debug("close(%d) not written: %r", code, exc)

    def _wsproto(self) -> FrameConnection:
        if self._protocol is None:
            self._protocol = FrameConnection(ConnectionType.SERVER)
        return self._protocol

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
        if not self.close_sent or self.peer_closed or self.broken:
            return
        with trio.move_on_after(LINGER_SECONDS):
            try:
                await self._stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            buffer, skip = self._buffer, 0
            while True:
                if skip:
                    dropped = min(skip, len(buffer))
                    buffer, skip = buffer[dropped:], skip - dropped
                while not skip:
                    extent = _frame_extent(buffer)
                    if extent is None:
                        break
                    opcode, size = extent
                    if opcode == _OP_CLOSE:
                        return
                    if len(buffer) >= size:
                        buffer = buffer[size:]
                    else:
                        buffer, skip = b"", size - len(buffer)
                try:
                    data = await self._stream.receive_some(RECEIVE_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                buffer += data


def _framed(frames: list[Frame]) -> list[bytes]:
    """Server frames (unmasked, uncompressed) for `frames`: header, payload, header, ..."""
    chunks: list[bytes] = []
    append = chunks.append
    for frame in frames:
        data = frame.data
        length = len(data)
        if length < 126:
            append((_BINARY_HEADERS if frame.binary else _TEXT_HEADERS)[length])
        else:
            append(frame_header(length, frame.binary))
        append(data)
    return chunks


def _send_nowait(sock: trio.socket.SocketType, data: bytes) -> int:
    """One non-blocking write() on a trio socket's descriptor; bytes written (EAGAIN: 0)."""
    fd = sock.fileno()
    if fd < 0:
        raise OSError(errno.EBADF, "socket closed")
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


def _frame_header(buffer: bytes) -> tuple[int, int, int] | None:
    """(opcode, payload start, payload length) of the frame at the start of `buffer`, or None
    while its header is incomplete. The payload start is past the masking key, if any."""
    if len(buffer) < 2:
        return None
    length = buffer[1] & 0x7F
    start = 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length = int.from_bytes(buffer[2:4], "big")
        start = 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length = int.from_bytes(buffer[2:10], "big")
        start = 10
    if buffer[1] & 0x80:
        start += 4
    return buffer[0] & 0x0F, start, length


def _frame_extent(buffer: bytes) -> tuple[int, int] | None:
    """(opcode, total length) of the frame at the start of `buffer`, if its header is there."""
    header = _frame_header(buffer)
    if header is None:
        return None
    opcode, start, length = header
    return opcode, start + length


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
        self, connection: WsprotoConnection, hub: SocketHub, handle: SessionHandle, response: bytes
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


async def accept_upgrade(
    stream: trio.SocketStream,
    head: bytes,
    headers: list[tuple[bytes, bytes]],
    rest: bytes,
    socket: FastPathSocket,
    peer: str | None,
) -> UpgradedSocket | int:
    """The handshake of one WebSocket upgrade whose request head (`head`) has been read; `rest`
    is what followed it. Returns the accepted socket, or the HTTP status of the refusal once it
    was answered (the caller closes the stream)."""
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.receive_data(head)
        event = next(ws.events(), None)
    except RemoteProtocolError as exc:
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
    if not isinstance(decision, Accepted):
        hub.count(f"refused_{decision.reason}")
        await _send_all(stream, _reject(ws, decision.status))
        return decision.status
    try:
        handle = await hub.open_session(decision.principal, decision.serializer)
    except Exception:
        log.exception("could not start a session")
        hub.count("refused_unavailable")
        await _send_all(stream, _reject(ws, 503))
        return 503
    settings = hub.settings.socket
    deflate = PerMessageDeflate()
    extensions: list[Extension] = [deflate] if settings.compression else []
    accept = ws.send(AcceptConnection(subprotocol=decision.subprotocol, extensions=extensions))
    compressed = settings.compression and deflate.enabled()
    connection = WsprotoConnection(
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
