"""The access log: one line per HTTP request and per socket upgrade, on the `parley.access` logger.

A line is `<peer> <method> <target> <status> <duration> ms`, e.g.
`127.0.0.1:50312 GET /api/users?limit&before 200 3.1 ms`. The target is the raw path (as sent,
still percent-encoded, so it cannot break the line) followed by the *names* of the query
parameters, never their values: values carry secrets (`token=`, `jwt=`, `password=`, signatures,
reset and confirmation tokens), and a list of names to redact would miss the next one. A name that
does not look like one is shown as `*`: more than 32 characters, or any but letters, digits, `_`,
`-`, `[`, `]` (a bare value: a JWT has dots, Parley's opaque tokens are 43 characters and more).
The status is `-` when no complete response was sent (the app failed or the client left first).

Requests served by Hypercorn (REST, and socket upgrades on the ASGI path) are logged by `AccessLog`,
an ASGI middleware, once the response's last byte is handed over (an upgrade once it is accepted or
refused); the fast path's upgrades by `parley.api.server.listener` once the handshake is answered.
Neither writes per frame. `server.access_log = false` turns both off. (Hypercorn's own access log is
not used: it formats every environment variable into each request's fields, and logs a request twice
when the client closes while the response's end is being written.)
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from hypercorn.typing import (
        ASGIReceiveCallable,
        ASGISendCallable,
        ASGISendEvent,
        Scope,
    )

log = logging.getLogger("parley.access")

_PARAMETER_NAME: Final = re.compile(rb"[A-Za-z0-9_\-\[\]]{1,32}")
_LOGGED_SCOPES: Final = frozenset(("http", "websocket"))


def logged_target(raw_path: bytes, query_string: bytes) -> str:
    """The path with the query's parameter names only: `/a?limit=5&token=x` -> `/a?limit&token`."""
    target = raw_path.decode("latin-1")
    if not query_string:
        return target
    names = []
    for item in query_string.split(b"&"):
        name = item.partition(b"=")[0]
        if name:
            names.append(name.decode("ascii") if _PARAMETER_NAME.fullmatch(name) else "*")
    return f"{target}?{'&'.join(names)}"


def log_request(
    peer: str | None, method: str, target: str, status: int | None, seconds: float
) -> None:
    """Write one access line (a `None` status: no complete response was sent)."""
    log.info(
        "%s %s %s %s %.1f ms",
        peer or "-",
        method,
        target,
        "-" if status is None else status,
        seconds * 1000,
    )


class AccessLog:
    """ASGI middleware writing the access line of each HTTP request and WebSocket handshake."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] not in _LOGGED_SCOPES or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        logged = False
        fields: Any = scope

        def write(final: int | None) -> None:
            nonlocal logged
            logged = True
            client = fields.get("client")
            raw_path = fields.get("raw_path") or fields["path"].encode()
            log_request(
                ":".join(map(str, client)) if client else None,
                fields.get("method", "GET"),
                logged_target(raw_path, fields.get("query_string", b"")),
                final,
                time.perf_counter() - started,
            )

        async def send_and_log(message: ASGISendEvent) -> None:
            nonlocal status
            if logged:  # the line is written: the rest of a socket's frames pass straight on
                await send(message)
                return
            event: Any = message
            kind = event["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = event["status"]
            elif kind in ("http.response.body", "websocket.http.response.body"):
                if not event.get("more_body", False):
                    # In a finally: Hypercorn ends the request inside this send, and the app
                    # (Quart-Trio) is cancelled there when it hears that.
                    try:
                        await send(message)
                    finally:
                        write(status)
                    return
            elif kind == "websocket.accept":
                write(101)
            elif kind == "websocket.close":
                write(403)  # a close before the accept is answered 403 (ASGI)
            await send(message)

        try:
            await self.app(scope, receive, send_and_log)
        finally:
            if not logged:
                write(None)
