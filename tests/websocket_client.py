"""A client WebSocket for the tests that owns its TCP stream and closes it on exit.

trio-websocket 0.12's `open_websocket_url` leaves a client's stream unclosed after a
server-initiated close (its `aclose` returns early once the close handshake is done), which shows
up as a ResourceWarning on an unclosed socket. Opening the stream here and wrapping it with the
public `wrap_client_stream` keeps the stream ours to close, whoever closed the WebSocket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream


@asynccontextmanager
async def client_websocket(
    url: str,
    *,
    subprotocols: Sequence[str] | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    message_queue_size: float = 1,
    connect_timeout: float = 10.0,
) -> AsyncIterator[WebSocketConnection]:
    """Connect to `url` (ws:// or wss://), yield the connection, close it and its stream."""
    target = urlsplit(url)
    secure = target.scheme == "wss"
    host = target.hostname or "localhost"
    port = target.port or (443 if secure else 80)
    resource = target.path + (f"?{target.query}" if target.query else "")
    async with trio.open_nursery() as nursery:
        with trio.fail_after(connect_timeout):
            stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] = (
                await trio.open_ssl_over_tcp_stream(host, port)
                if secure
                else await trio.open_tcp_stream(host, port)
            )
        try:
            with trio.fail_after(connect_timeout):
                ws = await wrap_client_stream(
                    nursery,
                    stream,
                    host if target.port is None else f"{host}:{port}",
                    resource,
                    subprotocols=subprotocols,
                    extra_headers=extra_headers,
                    message_queue_size=message_queue_size,  # type: ignore[arg-type]  # math.inf is documented
                )
            try:
                yield ws
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(connect_timeout):
                    await ws.aclose()
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            nursery.cancel_scope.cancel()
