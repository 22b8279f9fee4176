"""What a socket transport hands the protocol core, and what it gets back. No I/O here.

PHOENIX_PROTOCOL.md §3.1 splits a connection in two phases, and so does this module:

1. **Upgrade**: the transport turns the HTTP upgrade request into a `ConnectRequest` (path, query,
   headers, offered sub-protocols) and asks its `Authorize` (for Phoenix sockets
   `parley.api.socket.phoenix.connect.PhoenixConnect`) whether to accept it. A refusal is
   answered *before* the upgrade with its HTTP status (403, or 400 for a request that is not an
   upgrade at all), never by a WebSocket that opens and closes.
2. **Connection**: the transport accepts (selecting the `phoenix` sub-protocol when offered), then
   runs `pump` with an object implementing `Connection`: its reader hands every data frame to
   the session, and its writer drains the session's `OutboundQueue` and finally sends the close
   frame the session asked for.

Everything above this line (sessions, channels, serializers) is shared, so a transport only has to
implement `Connection` and build `ConnectRequest`s: `transports.fast_path` (wsproto on our own
listener, DESIGN §7), `transports.asgi` (the portable one, under any ASGI server).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import parse_qsl

import trio

if TYPE_CHECKING:
    from parley.api.socket.core.message import Frame
    from parley.api.socket.core.outbound import CloseMapping, OutboundQueue
    from parley.api.socket.core.principal import SocketPrincipal
    from parley.api.socket.core.router import Router
    from parley.api.socket.core.serializer import Serializer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Wire:
    """What a wire protocol other than Phoenix's changes about a connection (the defaults are
    Phoenix's): its name, its channel routes, the frames sent first, its idle timeout and the
    close code for it, and how the core's close codes map onto its own."""

    protocol: str = "phoenix"
    router: Router | None = None
    """The protocol's route table (None: the hub's, Phoenix's channels)."""
    greeting: tuple[Frame, ...] = ()
    idle_timeout: float | None = None
    """Silence after which the socket closes (None: `socket.heartbeat_timeout_seconds`)."""
    idle_close: int | None = None
    """The close code for that (None: 1001)."""
    closing: CloseMapping | None = None


PHOENIX_WIRE: Final = Wire()


@dataclass(frozen=True, slots=True)
class Accepted:
    """Upgrade: the connection's principal, the serializer for its protocol version, and the
    sub-protocol to select (None: select none)."""

    principal: SocketPrincipal
    serializer: Serializer
    subprotocol: str | None
    wire: Wire = PHOENIX_WIRE


@dataclass(frozen=True, slots=True)
class Dismissed:
    """Accept the upgrade, send `frames`, then close with `code`: how a protocol whose refusals
    are close codes refuses (Pusher's 4001 unknown app, 4007 bad protocol version...). No session
    is started."""

    frames: tuple[Frame, ...]
    code: int
    reason: str
    """For logs and counters, and the close frame's reason."""


@dataclass(frozen=True, slots=True)
class Refused:
    """Answer the upgrade request with HTTP `status` instead."""

    status: int
    reason: str
    """For logs and counters only; never sent."""


Authorize = Callable[["ConnectRequest"], Awaitable[Accepted | Refused | Dismissed]]
"""The upgrade decision a transport asks for each connection."""


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """The parts of an upgrade request the connect logic looks at (§3.1, §3.5)."""

    path: str
    query_string: str
    headers: Mapping[str, str]
    """Lower-case names; repeated headers joined with ", "."""
    subprotocols: tuple[str, ...] = ()
    peer: str | None = None
    query: dict[str, str] = field(init=False)
    """Flat query parameters (the last value wins; bracketed keys stay as they are)."""

    def __post_init__(self) -> None:
        query: dict[str, str] = {}
        for key, value in parse_qsl(self.query_string, keep_blank_values=True):
            query[key] = value
        object.__setattr__(self, "query", query)

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin")

    @property
    def host(self) -> str | None:
        return self.headers.get("host")


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What a transport tells the hub about an accepted connection, for operators and metrics."""

    transport: str
    """`websocket` or `longpoll`."""
    protocol: str
    """The wire protocol served (`phoenix` or `pusher`)."""
    peer: str | None
    """The client's address as the transport saw it (`host:port`), if known."""


@dataclass(frozen=True, slots=True)
class InboundFrame:
    """One data frame as received: text (`str`) or binary (`bytes`)."""

    data: str | bytes

    @property
    def binary(self) -> bool:
        return isinstance(self.data, bytes)

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else len(self.data.encode())


class Connection(Protocol):
    """An accepted WebSocket, as the pump drives it."""

    async def receive(self) -> InboundFrame | None:
        """The next data frame, or None once the peer has closed (or the connection dropped)."""
        ...

    async def send_frames(self, frames: list[Frame]) -> None:
        """Write these frames in order, as one batch where the transport can."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame; never raises for a connection that is already gone."""
        ...


class FrameSink(Protocol):
    """Where the reader hands inbound frames: the session (backpressure: may wait)."""

    async def inbound(self, frame: InboundFrame) -> bool:
        """Take one frame; False when the session is gone and reading should stop."""
        ...

    def transport_closed(self) -> None:
        """The peer closed or the connection dropped."""
        ...


READER_TASK: Final = "socket-reader"
"""The reader's task name, one string for every connection (trio formats one per task else)."""


async def pump(connection: Connection, sink: FrameSink, outbound: OutboundQueue) -> None:
    """Run the connection: reader -> session, session's outbound queue -> writer, then close.

    Returns when the connection is over: the peer closed it, or the session asked to close
    (`outbound.close`), in which case the queued frames are written first and then the close frame.
    """
    async with trio.open_nursery() as nursery:

        async def read() -> None:
            while True:
                frame = await connection.receive()
                if frame is None:
                    # The peer is gone: nothing more can be written; stop the writer too.
                    sink.transport_closed()
                    nursery.cancel_scope.cancel()
                    return
                if not await sink.inbound(frame):
                    # The session ended; its close code is in the outbound queue and the
                    # writer sends it after what is queued.
                    return

        nursery.start_soon(read, name=READER_TASK)
        while True:
            frames = await outbound.take_all()
            if not frames and outbound.closing:
                break
            try:  # an empty batch flushes what the transport could not write at once
                await connection.send_frames(frames)
            except Exception as exc:  # the server tore the connection down under us
                log.debug("write failed (%r); the connection is gone", exc)
                sink.transport_closed()
                nursery.cancel_scope.cancel()
                return
            outbound.record_sent(frames)
            del frames  # while waiting for the next batch, an idle connection holds no frames
        request = outbound.close_request
        if request is not None:
            await connection.close(request.code, request.reason)
        nursery.cancel_scope.cancel()
