"""The public listener of `parley serve` (DESIGN §7): WebSocket upgrades to the socket path are
served by the fast transport, every other connection by Hypercorn.

`serve_public` is Hypercorn's trio `worker_serve` with one change: instead of handing each
accepted connection straight to Hypercorn's `TCPServer`, it first reads the connection's first
request head (bounded by Hypercorn's `h11_max_incomplete_size`, within `keep_alive_timeout`).

* `GET <socket.path>` with `Upgrade: websocket` goes to `fast_path.accept_upgrade`
  (handshake, authorization, session, pump), with the bytes after the head passed along; so
  does `GET /app/{app_key}` with `Upgrade: websocket`, the Pusher protocol's socket, with its
  own upgrade decision (docs/pusher.md).
* A Pusher-signed `POST` to the trigger API, or to Pusher's `/apps/{app_id}/events` or
  `batch_events`, goes to `triggers.FastTriggers`, which answers it and the signed triggers
  after it on the connection; the first other request, with what was read of it, goes on as
  below.
* Anything else (REST, the 400 for a plain HTTP request on the socket path, HTTP/2 prior
  knowledge, a malformed or oversized head) goes to Hypercorn's `TCPServer` for the
  Quart-Trio app, through `ReplayStream`, which hands Hypercorn the bytes already read before
  reading the socket again. Keep-alive, request bodies, pipelining: all Hypercorn's.

Hypercorn's lifespan runs as in `worker_serve` (the app's startup before the first accept,
its shutdown after the last connection). Drain, when `shutdown_trigger` returns: stop accepting,
tell Hypercorn's connections (`WorkerContext.terminated`: idle keep-alive connections close,
in-flight requests finish), then wait for the connections to end, at most `graceful_timeout`,
and cancel what is left. Sockets are closed with 1012 before that by `service.serve`
(`SocketHub.close_all`), on either transport; a socket session ends its connection (close
frame, bounded linger) as soon as its session is stopped.

Each upgrade gets one access-log line once its handshake is answered (101 or the refusal,
`parley.api.access_log`); what Hypercorn serves is logged by the app's `AccessLog` middleware.

TLS is not handled here: with TLS configured `HttpServer` runs plain Hypercorn.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import trio
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app

from parley.api.access_log import AccessLog, log_request, logged_target
from parley.api.server.triggers import FastTriggers
from parley.api.socket.pusher.connect import PUSHER_PATH_PREFIX
from parley.api.socket.transports.fast_path import FastPathSocket, accept_upgrade

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hypercorn.config import Config as HypercornConfig
    from quart_trio import QuartTrio

    from parley.api.pusher_http import PusherApi
    from parley.api.trigger import Triggers
    from parley.config import Settings

log = logging.getLogger(__name__)

RECEIVE_BYTES: Final = 65_536
PUSHER_PREFIX: Final = PUSHER_PATH_PREFIX.encode()


class ReplayStream:
    """A socket stream that first returns `buffered`, for Hypercorn's `TCPServer`.

    It exposes what `TCPServer` uses (`socket`, `receive_some`, `send_all`, `send_eof`,
    `aclose`) and deliberately no `do_handshake`: `TCPServer` takes the missing attribute to
    mean "not TLS".
    """

    __slots__ = ("_buffered", "_stream", "socket")

    def __init__(self, stream: trio.SocketStream, buffered: bytes) -> None:
        self._stream = stream
        self._buffered = buffered
        self.socket = stream.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        buffered = self._buffered
        if buffered:
            await trio.lowlevel.checkpoint()
            if max_bytes is None or len(buffered) <= max_bytes:
                self._buffered = b""
                return buffered
            self._buffered = buffered[max_bytes:]
            return buffered[:max_bytes]
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        self._stream.setsockopt(level, option, value)

    def getsockopt(self, level: int, option: int, buffersize: int = 0) -> int | bytes:
        return self._stream.getsockopt(level, option, buffersize)


class RequestHead:
    """The parts of a request head the router looks at (wsproto re-parses it properly)."""

    __slots__ = ("headers", "method", "path", "query")

    def __init__(
        self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], query: bytes = b""
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.query = query

    @classmethod
    def parse(cls, head: bytes) -> RequestHead | None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return None
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            if not line:
                continue
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                return None  # obs-fold or junk: leave it to Hypercorn's h11
            headers.append((name.lower(), value.strip()))
        path, _, query = parts[1].partition(b"?")
        return cls(parts[0], path, headers, query)

    def is_websocket_upgrade(self) -> bool:
        if self.method != b"GET":
            return False
        for name, value in self.headers:
            if name == b"upgrade" and b"websocket" in value.lower():
                return True
        return False


class Router:
    """Per accepted connection: read the first head, then the fast transport or Hypercorn."""

    def __init__(
        self,
        app: Any,
        config: HypercornConfig,
        context: WorkerContext,
        lifespan_state: dict[str, Any],
        socket: FastPathSocket | None,
        socket_path: str,
        access_log: bool = True,
        triggers: FastTriggers | None = None,
        pusher: FastPathSocket | None = None,
    ) -> None:
        self.app = app
        self.triggers = triggers
        self.pusher = pusher
        self.config = config
        self.context = context
        self.lifespan_state = lifespan_state
        self.socket = socket
        self.socket_path = socket_path.encode("latin-1")
        self.access_log = access_log
        self.head_limit = int(config.h11_max_incomplete_size)
        self.head_timeout = float(config.keep_alive_timeout)
        self.upgrades = 0
        self.handed_over = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        data = await self._read_head(stream)
        if not data or self.context.terminated.is_set():
            await stream.aclose()
            return
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0 and self.triggers is not None and self.triggers.takes(data):
            rest = await self.triggers.serve(
                stream, data, _peer(stream), self.context.terminated.is_set
            )
            if rest is None:
                await stream.aclose()
                return
            data, head_end = rest, rest.find(b"\r\n\r\n")
        if head_end >= 0 and (self.socket is not None or self.pusher is not None):
            upgrade = self._socket_upgrade(data, head_end)
            if upgrade is not None:
                del data  # held by `upgrade` until the handshake is done, then dropped
                self.upgrades += 1
                await self._serve_socket(stream, upgrade)
                return
        self.handed_over += 1
        server = TCPServer(
            self.app,
            self.config,
            self.context,
            ConnectionState(self.lifespan_state.copy()),
            ReplayStream(stream, data),  # type: ignore[arg-type]
        )
        await server.run()

    async def _read_head(self, stream: trio.SocketStream) -> bytes:
        """What the client sent until the end of its first request head (or the head limit, the
        head timeout, or its close: then possibly incomplete or empty)."""
        data = b""
        with trio.move_on_after(self.head_timeout):
            while len(data) <= self.head_limit:
                try:
                    chunk = await stream.receive_some(RECEIVE_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return b""
                if not chunk:
                    return b""
                data += chunk
                if data.find(b"\r\n\r\n") >= 0:
                    break
        return data

    def _socket_upgrade(self, data: bytes, head_end: int) -> _Upgrade | None:
        """The upgrade when `data` starts with a WebSocket upgrade to the socket path."""
        head = data[: head_end + 4]
        parsed = RequestHead.parse(head)
        if parsed is None or not parsed.is_websocket_upgrade():
            return None
        socket: FastPathSocket | None
        if parsed.path == self.socket_path and self.socket is not None:
            socket = self.socket
        elif self.pusher is not None and parsed.path.startswith(PUSHER_PREFIX):
            socket = self.pusher
        else:
            return None
        target = logged_target(parsed.path, parsed.query) if self.access_log else ""
        return _Upgrade(head, parsed.headers, data[head_end + 4 :], target, socket)

    async def _serve_socket(self, stream: trio.SocketStream, upgrade: _Upgrade) -> None:
        peer = _peer(stream)
        started = time.perf_counter()
        try:
            upgraded = await accept_upgrade(
                stream, upgrade.head, upgrade.headers, upgrade.rest, upgrade.socket, peer
            )
            if self.access_log:
                status = upgraded if isinstance(upgraded, int) else 101
                log_request(peer, "GET", upgrade.target, status, time.perf_counter() - started)
            # The request is only needed for the handshake: an idle connection must not keep it.
            upgrade.head, upgrade.headers, upgrade.rest, upgrade.target = b"", [], b"", ""
            if not isinstance(upgraded, int):
                await upgraded.serve()
        except Exception:  # one connection's failure must not reach the listener
            log.exception("socket upgrade failed")
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()


class _Upgrade:
    """A WebSocket upgrade's request head, its headers, the bytes read after it, its target
    as the access log shows it, and the socket (protocol) that answers it."""

    __slots__ = ("head", "headers", "rest", "socket", "target")

    def __init__(
        self,
        head: bytes,
        headers: list[tuple[bytes, bytes]],
        rest: bytes,
        target: str,
        socket: FastPathSocket,
    ) -> None:
        self.head = head
        self.headers = headers
        self.rest = rest
        self.target = target
        self.socket = socket


def _peer(stream: trio.SocketStream) -> str | None:
    try:
        address = stream.socket.getpeername()
    except OSError:
        return None
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


async def serve_public(
    app: QuartTrio,
    config: HypercornConfig,
    settings: Settings,
    socket: FastPathSocket | None,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    triggers: Triggers | None = None,
    pusher: FastPathSocket | None = None,
    pusher_api: PusherApi | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Hypercorn's `worker_serve` with upgrades to the socket path answered by `socket` (the fast
    transport; None: everything to Hypercorn), upgrades under `/app/` by `pusher`, and signed
    triggers by `triggers` (and Pusher's by `pusher_api`)."""
    if config.ssl_enabled:
        raise ValueError("the public listener does not do TLS; use plain Hypercorn for that")
    config.set_statsd_logger_class(StatsdLogger)
    logged = AccessLog(app) if settings.server.access_log else app
    wrapped = wrap_app(logged, config.wsgi_max_body_size, None)
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    router = Router(
        wrapped,
        config,
        context,
        lifespan_state,
        socket,
        settings.socket.path,
        settings.server.access_log,
        None
        if triggers is None
        else FastTriggers(
            triggers,
            max_body_bytes=settings.server.max_request_body_bytes,
            head_limit=int(config.h11_max_incomplete_size),
            keep_alive_seconds=float(config.keep_alive_timeout),
            access_log=settings.server.access_log,
            pusher=pusher_api,
        ),
        pusher,
    )

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()

        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets()
            listeners: list[trio.SocketListener] = []
            binds: list[str] = []
            for sock in sockets.insecure_sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                bind = repr_socket_addr(sock.family, sock.getsockname())
                binds.append(f"http://{bind}")
                await config.log.info(f"Running on http://{bind} (CTRL + C to quit)")
            task_status.started(binds)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    nursery.start_soon(
                        partial(
                            trio.serve_listeners,
                            router.handle,
                            listeners,
                            handler_nursery=server_nursery,
                        )
                    )
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, others = error.split((ShutdownError, KeyboardInterrupt))
                if others is not None:
                    raise others from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout

        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
