"""The fast path's WebSocket frame codec, sans I/O (RFC 6455 §5): bytes in, frames out.

`FrameReader` turns the bytes a client sent into whole data frames. The common case, a complete,
unfragmented, masked text or binary frame without extension bits, is parsed here; every other
frame (control frames, fragments, compressed frames, protocol errors) is handed to wsproto
*whole*, so wsproto never holds a partial frame and the two parsers never disagree about where a
frame starts. A frame (or a fragmented message) above the size limit is refused from its header,
before its payload is buffered. What the protocol makes the server answer (a pong, the reply to a
close) is handed to the owner's `write_soon`.

`framed` builds server frames: unmasked, so a frame's bytes are the same for every recipient, a
2-10 byte header from a table followed by the serializer's bytes. docs/fast_path.md has the
measurements behind both choices.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any, Final

from wsproto import ConnectionType
from wsproto.connection import Connection as FrameConnection
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol

from parley.api.socket.core.close_codes import (
    CLOSE_INVALID_DATA,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_PROTOCOL_ERROR,
)
from parley.api.socket.core.message import Frame
from parley.api.socket.core.transport import InboundFrame

# Server frame headers: FIN + opcode, then the 7-bit length (no mask bit).
_TEXT_HEADERS: Final = tuple(bytes((0x81, n)) for n in range(126))
_BINARY_HEADERS: Final = tuple(bytes((0x82, n)) for n in range(126))
_MEDIUM: Final = struct.Struct("!BBH")
_LARGE: Final = struct.Struct("!BBQ")

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE = 0x0, 0x1, 0x2, 0x8


class ProtocolFailure(Exception):
    """The client broke the protocol or a limit; the connection closes with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# -- server frames -------------------------------------------------------------------------


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


def framed(frames: list[Frame]) -> list[bytes]:
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


# -- client frames -------------------------------------------------------------------------


def unmask(payload: bytes, mask: bytes) -> bytes:
    length = len(payload)
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


def parse_header(buffer: bytes) -> tuple[int, int, int] | None:
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


def frame_extent(buffer: bytes) -> tuple[int, int] | None:
    """(opcode, total length) of the frame at the start of `buffer`, if its header is there."""
    header = parse_header(buffer)
    if header is None:
        return None
    opcode, start, length = header
    return opcode, start + length


def close_frame_ahead(buffer: bytes, skip: int) -> tuple[bool, bytes, int]:
    """Skim `buffer` for the client's close frame after ours (`skip`: bytes of a frame still to
    drop): (found, what is left to keep, bytes still to skip)."""
    if skip:
        dropped = min(skip, len(buffer))
        buffer, skip = buffer[dropped:], skip - dropped
    while not skip:
        extent = frame_extent(buffer)
        if extent is None:
            break
        opcode, size = extent
        if opcode == OP_CLOSE:
            return True, buffer, 0
        if len(buffer) >= size:
            buffer = buffer[size:]
        else:
            buffer, skip = b"", size - len(buffer)
    return False, buffer, skip


class FrameReader:
    """The receiving side of one server connection, and wsproto's frame protocol when needed.

    `write_soon(data)` takes what the protocol makes the server send while reading (pongs, the
    reply to the client's close).
    """

    def __init__(
        self,
        protocol: FrameConnection | None,
        *,
        buffered: bytes,
        max_frame_bytes: int,
        compressed: bool,
        write_soon: Callable[[bytes], None],
    ) -> None:
        self._protocol = protocol
        """wsproto's frame protocol, built on first use: most connections only ever carry the
        frames parsed here, and an idle connection should not hold its buffers."""
        self.buffer = buffered
        self._max = max_frame_bytes
        self.compressed = compressed
        self._write_soon = write_soon
        self._parts: list[Any] = []
        """Parts of a fragmented (or compressed) message wsproto is assembling."""
        self._message_bytes = 0
        self._fragmented = False
        self.close_sent = False
        self.peer_closed = False

    def feed(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data

    def next_frame(self) -> InboundFrame | bool | None:
        """The next complete data frame from the buffer; False when the peer closed; None when
        more bytes are needed. Raises `ProtocolFailure` to close the connection."""
        while True:
            buffer = self.buffer
            if len(buffer) < 2:
                return None
            header = parse_header(buffer)
            if header is None:
                return None
            first = buffer[0]
            masked = buffer[1] & 0x80
            opcode, start, length = header
            if opcode in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
                if opcode != OP_CONTINUATION:
                    self._message_bytes = 0
                if self._message_bytes + length > self._max:
                    raise ProtocolFailure(CLOSE_MESSAGE_TOO_BIG, "frame too large")
            elif length > 125:
                raise ProtocolFailure(CLOSE_PROTOCOL_ERROR, "control frame too long")
            end = start + length
            if len(buffer) < end:
                return None
            self.buffer = buffer[end:]
            if masked and not self._fragmented and (first == 0x81 or first == 0x82):
                # The common case: a whole masked text/binary frame with no extension bits.
                payload = unmask(buffer[start:end], buffer[start - 4 : start])
                if first == 0x82:
                    return InboundFrame(payload)
                try:
                    return InboundFrame(payload.decode())
                except UnicodeDecodeError:
                    raise ProtocolFailure(CLOSE_INVALID_DATA, "invalid UTF-8") from None
            if opcode in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
                self._message_bytes += length
                self._fragmented = not first & 0x80
            result = self._wsproto_frame(buffer[:end])
            if result is not None:
                return result

    def _wsproto_frame(self, raw: bytes) -> InboundFrame | bool | None:
        """Hand one complete frame to wsproto; a finished data message, False on close, or
        None (a control frame or a fragment was handled)."""
        ws = self.protocol()
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
                    size = len(text.encode()) if self.compressed else 0
                    result = InboundFrame(text)
                else:
                    data = b"".join(parts)
                    size = len(data)
                    result = InboundFrame(data)
                if size > self._max:  # a compressed message that inflated past the limit
                    raise ProtocolFailure(CLOSE_MESSAGE_TOO_BIG, "frame too large")
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
                # wsproto's ParseFailed
                raise ProtocolFailure(event.code, event.reason or "protocol error")
        return result

    def close_frame(self, code: int, reason: str) -> bytes:
        """Our close frame (through wsproto, so its state knows we closed)."""
        ws = self.protocol()
        if ws.state is ConnectionState.OPEN:
            return ws.send(CloseConnection(code, reason))
        # wsproto refused the frame (ParseFailed left it OPEN, but be safe)
        encoded = struct.pack("!H", code) + reason.encode()[:123]
        return bytes((0x88, len(encoded))) + encoded

    def compressed_frames(self, frames: list[Frame]) -> list[bytes]:
        """`frames` through wsproto's permessage-deflate (per connection)."""
        ws = self.protocol()
        return [
            ws.send(BytesMessage(frame.data) if frame.binary else TextMessage(frame.text()))
            for frame in frames
        ]

    def protocol(self) -> FrameConnection:
        if self._protocol is None:
            self._protocol = FrameConnection(ConnectionType.SERVER)
        return self._protocol


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate that inflates no message past `max_message_bytes` (then 1009).

    wsproto's own inflates each frame whole before anyone can look at its size, so a deflate
    bomb of 64 KiB became 64 MiB of text (and ~200 MiB of Python memory) before the size check
    (drill W3). This inflates with zlib's `max_length`, so at most the limit plus one chunk is
    ever held. It relies on wsproto 1.3's inbound state (`_inbound_compressed`,
    `_inbound_is_compressible`, `_decompressor`), which `frame_inbound_header` sets.
    """

    def __init__(self, max_message_bytes: int) -> None:
        super().__init__()
        self._max_message_bytes = max_message_bytes
        self._inflated = 0

    def accept(self, offer: str) -> bool | str | None:
        """Our answer to one permessage-deflate offer, or None to decline it.

        wsproto declines window bits outside 9-15 but raises `ValueError` on a value that is not
        a number (`client_max_window_bits=x`), which failed the upgrade with a traceback (drill
        W10). RFC 7692 §5 lets a server decline an offer it cannot accept: the socket then opens
        without compression.
        """
        try:
            return super().accept(offer)
        except ValueError:
            return None

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        room = self._max_message_bytes - self._inflated + 1
        try:
            inflated = self._decompressor.decompress(bytes(data), room)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(inflated)
        if self._inflated > self._max_message_bytes or self._decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return inflated

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        result = super().frame_inbound_complete(proto, fin)
        if isinstance(result, bytes):
            self._inflated += len(result)
            if self._inflated > self._max_message_bytes:
                return CloseReason.MESSAGE_TOO_BIG
        if fin:
            self._inflated = 0
        return result
