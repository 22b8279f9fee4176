"""The HTTP server child of the supervision tree: the public port of `parley serve`.

With `socket.fast_path` (the default) it runs `parley.api.server.listener.serve_public`: WebSocket
upgrades to the socket path are served by the wsproto transport, every other connection by
Hypercorn's trio `TCPServer` for the Quart-Trio app (docs/fast_path.md). Without it, Hypercorn's
trio `serve()` runs the app alone and the socket goes through ASGI (`transports.asgi`), the
portable path.
"""

from __future__ import annotations

import logging
import math
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from parley.api.access_log import AccessLog
from parley.api.pusher_http import PusherApi
from parley.api.server.listener import serve_public
from parley.api.socket.transports.fast_path import FastPathSocket
from parley.api.trigger import Triggers
from parley.config import Settings


def hypercorn_config(settings: Settings) -> HypercornConfig:
    """Hypercorn settings chosen on purpose rather than inherited from its defaults."""
    config = HypercornConfig()
    config.bind = [f"{settings.server.host}:{settings.server.port}"]
    config.graceful_timeout = settings.server.shutdown_grace_seconds
    config.backlog = settings.server.listen_backlog
    # Hypercorn accepts 16 MiB WebSocket messages by default; ours are bounded by the socket limit.
    config.websocket_max_message_size = settings.socket.max_frame_bytes
    # Our access line (`server.access_log`, parley.api.access_log) instead of Hypercorn's.
    config.accesslog = None
    # Hypercorn's errors go through the logging set-up as they are; "-" would give the logger a
    # handler of its own besides the root's, and every line would be written twice.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    return config


class HttpServer:
    """Serves the app until asked to drain; `binds` holds the bound URLs once started."""

    def __init__(
        self,
        app: QuartTrio,
        settings: Settings,
        socket: FastPathSocket | None = None,
        triggers: Triggers | None = None,
        pusher: FastPathSocket | None = None,
        pusher_api: PusherApi | None = None,
    ) -> None:
        self._app = app
        self._pusher = pusher
        """Serves Pusher-protocol upgrades (`/app/{key}`) on the public listener."""
        self._pusher_api = pusher_api
        """Answers Pusher's signed `events` and `batch_events` on the public listener."""
        self._settings = settings
        self._triggers = triggers
        """Answers signed triggers on the public listener (`api.server.triggers`)."""
        self._socket = socket
        """Serves socket upgrades on the public listener (`socket.fast_path`); None: Hypercorn
        takes them too, through the app's ASGI transport."""
        self._draining = trio.Event()
        self._drained = trio.Event()
        self.binds: list[str] = []

    async def run(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        config = hypercorn_config(self._settings)
        if self._settings.socket.fast_path and not config.ssl_enabled:
            server = partial(
                serve_public,
                self._app,
                config,
                self._settings,
                self._socket,
                shutdown_trigger=self._draining.wait,
                triggers=self._triggers,
                pusher=self._pusher,
                pusher_api=self._pusher_api,
            )
        else:
            app = AccessLog(self._app) if self._settings.server.access_log else self._app
            server = partial(serve, app, config, shutdown_trigger=self._draining.wait)
        async with trio.open_nursery() as nursery:
            self.binds = await nursery.start(server)
            task_status.started(self.binds)
        # Hypercorn returns once drained; stay up (not "exited") until the tree is shut down, so a
        # permanent child that finished draining is not restarted by its supervisor.
        self._drained.set()
        await trio.sleep_forever()

    async def drain(self, grace_seconds: float) -> None:
        """Stop accepting, let in-flight requests finish (bounded), then return."""
        self._draining.set()
        with trio.move_on_after(grace_seconds if grace_seconds > 0 else math.inf):
            await self._drained.wait()
