"""Parley as a plain ASGI application, for an ASGI server other than `parley serve`:

    hypercorn -k trio parley.asgi:app

Everything `parley serve` runs (database or embedded PostgreSQL, the supervision tree, the
actors) starts in the ASGI *lifespan* startup, and stops, in order, at lifespan shutdown, so
the server must support the lifespan protocol and run trio (Quart-Trio and the actors are trio
code: Hypercorn's `-k trio` worker). Settings come from `config/parley.toml` and the environment
as for `parley serve`; `server.host`/`server.port` are the ASGI server's business here.

The socket is served through the ASGI transport (`api.socket.transports.asgi`, the portable path);
the fast path needs `parley serve`'s own listener (docs/fast_path.md). Requests that arrive before
the startup finished (or on a server without lifespan support) get 503.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from parley.config import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from quart_trio import QuartTrio

    Scope = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
    Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger(__name__)


class ParleyAsgi:
    """An ASGI app that builds the running system at lifespan startup (lazily)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._app: QuartTrio | None = None

    @property
    def started(self) -> bool:
        return self._app is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        app = self._app
        if app is not None:
            await app(scope, receive, send)  # type: ignore[arg-type]
            return
        if kind == "http":
            body = b"starting up\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1013})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        from parley.service import RunningServer, serve

        message = await receive()
        if message.get("type") != "lifespan.startup":
            return
        settings = self._settings if self._settings is not None else load_settings()
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            try:
                running: RunningServer = await nursery.start(
                    partial(serve, settings, http_server=False, stop=stop)
                )
            except Exception as exc:
                log.exception("Parley failed to start")
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            app = running.app

            # The Quart app's own lifespan (its before/after_serving hooks), driven by ours.
            to_app, app_inbox = trio.open_memory_channel[Any](1)
            app_outbox, from_app = trio.open_memory_channel[Any](1)
            asgi: Any = app
            nursery.start_soon(asgi, scope, app_inbox.receive, app_outbox.send)
            await to_app.send({"type": "lifespan.startup"})
            answer = await from_app.receive()
            if answer.get("type") != "lifespan.startup.complete":
                stop.set()
                await send({"type": "lifespan.startup.failed", "message": answer.get("message")})
                return
            self._app = app
            await send({"type": "lifespan.startup.complete"})
            message = await receive()  # lifespan.shutdown: the server stopped serving
            await to_app.send({"type": "lifespan.shutdown"})
            await from_app.receive()
            self._app = None
            stop.set()  # the tree stops in order; `serve` returns and the nursery closes
        await send({"type": "lifespan.shutdown.complete"})


app = ParleyAsgi()
"""`hypercorn -k trio parley.asgi:app`."""
