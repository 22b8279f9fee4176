"""Hand-made client WebSocket frames for the protocol drills, sent on a raw socket after a real
handshake: sizes, fragments and compressed payloads exactly as a hostile client would send them.

Frames are masked with the all-zero key (valid per RFC 6455 §5.3, and it leaves the payload as
it is), so a large payload can be streamed from a generator without ever being held whole.
"""

from __future__ import annotations

import socket
import struct
import zlib
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, RejectConnection, Request
from wsproto.extensions import PerMessageDeflate

from tests.socket.rawwire import RawSocket

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
_ZERO_MASK = b"\x00\x00\x00\x00"


def frame_header(opcode: int, length: int, *, fin: bool = True, rsv1: bool = False) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if length < 126:
        sized = bytes((first, 0x80 | length))
    elif length < 1 << 16:
        sized = bytes((first, 0x80 | 126)) + struct.pack("!H", length)
    else:
        sized = bytes((first, 0x80 | 127)) + struct.pack("!Q", length)
    return sized + _ZERO_MASK


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    return frame_header(opcode, len(payload), fin=fin, rsv1=rsv1) + payload


def deflated(payload: bytes) -> bytes:
    """permessage-deflate's form of one message: raw deflate without the final empty block."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if data.endswith(b"\x00\x00\xff\xff") else data


_ZEROS = bytes(65_536)


def zeros(total: int) -> Iterator[bytes]:
    """`total` zero bytes in chunks: always the same chunk object, so sending them allocates
    nothing on the client's side (what a drill measures is the server's memory)."""
    while total > 0:
        size = min(len(_ZEROS), total)
        yield _ZEROS if size == len(_ZEROS) else _ZEROS[:size]
        total -= size


async def open_raw(url: str, token: str, *, deflate: bool = False) -> RawSocket:
    """A handshaken V2 socket on a raw stream (offering permessage-deflate when asked)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await sock.connect((host, port))
    stream = trio.SocketStream(sock)
    ws = WSConnection(ConnectionType.CLIENT)
    target = f"/socket/websocket?{urlencode({'token': token, 'vsn': '2.0.0'})}"
    extensions = [PerMessageDeflate()] if deflate else []
    await stream.send_all(ws.send(Request(host=f"{host}:{port}", target=target,
                                          extensions=extensions)))  # fmt: skip
    raw = RawSocket(stream, ws)
    with trio.fail_after(10):
        while True:
            ws.receive_data(await stream.receive_some(65536))
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return raw
                if isinstance(event, RejectConnection | CloseConnection):
                    raise ConnectionError(f"refused: {event}")
