"""Pusher-signed triggers answered on the public listener itself (DESIGN §7's fast path, for the
trigger API of docs/integrations.md and Pusher's `POST /apps/{app_id}/events` and `batch_events`,
docs/pusher.md "HTTP API").

An integrating backend sends triggers back to back over one keep-alive connection. Through
Hypercorn (h11) and Quart-Trio each request cost about a millisecond of CPU here, most of it the
framework's (docs/integrations.md, "Performance"); a signed trigger needs none of it: no session,
no Bearer check, no CORS, one route. So when a connection's request is a plain signed trigger
(`FastTriggers.takes`: `POST` to the trigger path or to Pusher's two, HTTP/1.1, a
`Content-Length` body or none, an `auth_signature`, and no `Authorization`, `Origin`,
`Transfer-Encoding` or `Expect`), this module answers it, and the ones after it on the
connection while they are such requests. The first request that is not goes, with the bytes
read so far, to Hypercorn, exactly as the listener hands over any other connection. The rules
are `api.trigger.Triggers` and `api.pusher_http.PusherApi`, shared with the Quart routes, so
both edges answer the same statuses and bodies.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, unquote

import orjson
import trio

from parley.api.access_log import log_request, logged_target
from parley.api.errors import ApiError, error_body
from parley.api.pusher_http import SignedRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from parley.api.pusher_http import PusherApi
    from parley.api.trigger import Triggers

log = logging.getLogger(__name__)

RECEIVE_BYTES: Final = 65_536
TRIGGER_PATH: Final = re.compile(rb"/api/organizations/([^/]+)/applications/([^/]+)/event/([^/]+)")
PUSHER_PATH: Final = re.compile(rb"/apps/([0-9]{1,19})/(events|batch_events)")
_REFUSED_HEADERS: Final = frozenset({b"authorization", b"origin", b"transfer-encoding", b"expect"})
_REASONS: Final = {
    200: b"OK",
    202: b"Accepted",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    413: b"Payload Too Large",
    415: b"Unsupported Media Type",
    422: b"Unprocessable Content",
    500: b"Internal Server Error",
}


class _Request:
    __slots__ = ("body_length", "close", "head_length", "mimetype", "path", "query")

    def __init__(
        self,
        path: bytes,
        query: bytes,
        head_length: int,
        body_length: int,
        mimetype: str,
        close: bool,
    ) -> None:
        self.path = path
        self.query = query
        self.head_length = head_length
        self.body_length = body_length
        self.mimetype = mimetype
        self.close = close


class FastTriggers:
    """Answers signed triggers on accepted connections (see the module docstring)."""

    def __init__(
        self,
        triggers: Triggers,
        *,
        max_body_bytes: int,
        head_limit: int,
        keep_alive_seconds: float,
        access_log: bool,
        pusher: PusherApi | None = None,
    ) -> None:
        self._triggers = triggers
        self._pusher = pusher
        self._max_body = max_body_bytes
        self._head_limit = head_limit
        self._keep_alive = keep_alive_seconds
        self._access_log = access_log

    def takes(self, data: bytes) -> bool:
        """Whether `data` starts with a complete head of a request this module answers."""
        return self._request(data) is not None

    def _request(self, data: bytes) -> _Request | None:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        lines = data[:head_end].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1":
            return None
        path, _, query = parts[1].partition(b"?")
        if b"auth_signature=" not in query or (
            TRIGGER_PATH.fullmatch(path) is None
            and (self._pusher is None or PUSHER_PATH.fullmatch(path) is None)
        ):
            return None
        length, mimetype, close = 0, "", False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                return None
            name, value = name.lower(), value.strip()
            if name in _REFUSED_HEADERS:
                return None
            if name == b"content-length":
                if not value.isdigit() or len(value) > 12:
                    return None
                length = int(value)
            elif name == b"content-type":
                mimetype = value.partition(b";")[0].strip().lower().decode("latin-1")
            elif name == b"connection":
                close = b"close" in value.lower()
        return _Request(path, query, head_end + 4, length, mimetype, close)

    async def serve(
        self, stream: trio.SocketStream, data: bytes, peer: str | None, stopping: Callable[[], bool]
    ) -> bytes | None:
        """Answer the connection's signed triggers, starting with the one `data` begins with.

        Returns what was read of the first request it does not take (for Hypercorn), or None
        when the connection is over (closed by either side, idle past keep-alive, or draining).
        """
        while True:
            request = self._request(data)
            if request is None:
                return data
            if request.body_length > self._max_body:
                await self._answer(stream, peer, request, 413, _too_large(), close=True)
                return None
            end = request.head_length + request.body_length
            data = await self._read_until(stream, data, end)
            if len(data) < end:
                return None
            raw, data = data[request.head_length : end], data[end:]
            status, body = await self._trigger(request, raw)
            await self._answer(stream, peer, request, status, body, close=request.close)
            if request.close or stopping():
                return None
            if b"\r\n\r\n" in data:
                await trio.lowlevel.checkpoint()  # pipelined requests: let the others run
            else:
                data = await self._read_head(stream, data)
                if not data or stopping():
                    return None

    async def _trigger(self, request: _Request, raw: bytes) -> tuple[int, bytes]:
        path = unquote(request.path.decode("latin-1"), errors="replace")
        query = parse_qsl(
            request.query.decode("utf-8", "replace"), keep_blank_values=True, errors="replace"
        )
        try:
            pusher = PUSHER_PATH.fullmatch(request.path)
            if pusher is not None and self._pusher is not None:
                signed = SignedRequest("POST", path, query, raw)
                app_id = int(pusher.group(1))
                if pusher.group(2) == b"events":
                    return 200, orjson.dumps(await self._pusher.events(app_id, signed))
                return 200, orjson.dumps(await self._pusher.batch_events(app_id, signed))
            matched = TRIGGER_PATH.fullmatch(request.path)
            assert matched is not None  # `_request` took only these paths
            slug, app_key, event = (
                unquote(part.decode("latin-1"), errors="replace") for part in matched.groups()
            )
            answer = await self._triggers.signed(
                slug, app_key, event, path=path, query=query, raw=raw, mimetype=request.mimetype
            )
        except ApiError as exc:
            return exc.status, orjson.dumps(error_body(exc.code, exc.message, exc.fields))
        except Exception:
            log.exception("trigger failed")
            return 500, orjson.dumps(error_body("internal", "internal server error"))
        return 202, orjson.dumps(answer)

    async def _answer(
        self,
        stream: trio.SocketStream,
        peer: str | None,
        request: _Request,
        status: int,
        body: bytes,
        *,
        close: bool,
    ) -> None:
        started = time.perf_counter()
        response = b"".join(
            (
                b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error")),
                b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n" if close else b"\r\n",
                body,
            )
        )
        try:
            # One write() at once (an answer this small nearly always fits the socket buffer):
            # trio's send_all costs several times the system call (py-spy, W7).
            written = _write_nowait(stream.socket, response)
            if written < len(response):
                await stream.send_all(response[written:])
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            status = 0
        if self._access_log:
            target = logged_target(request.path, request.query)
            log_request(peer, "POST", target, status or None, time.perf_counter() - started)

    async def _read_until(self, stream: trio.SocketStream, data: bytes, size: int) -> bytes:
        with trio.move_on_after(self._keep_alive):
            while len(data) < size:
                chunk = await _receive(stream)
                if not chunk:
                    break
                data += chunk
        return data

    async def _read_head(self, stream: trio.SocketStream, data: bytes) -> bytes:
        """Wait for the next request head (keep-alive); empty when none comes."""
        with trio.move_on_after(self._keep_alive):
            while len(data) <= self._head_limit:
                chunk = await _receive(stream)
                if not chunk:
                    return b""
                data += chunk
                if b"\r\n\r\n" in data:
                    return data
        return data if b"\r\n\r\n" in data else b""


def _write_nowait(sock: trio.socket.SocketType, data: bytes) -> int:
    """One non-blocking write() on the socket's descriptor; bytes written (EAGAIN: 0)."""
    fd = sock.fileno()
    if fd < 0:
        raise OSError(errno.EBADF, "socket closed")
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


async def _receive(stream: trio.SocketStream) -> bytes:
    """The next bytes from the client (empty: it closed). A checkpoint even when data is there
    (trio's `receive_some`), so one busy connection never starves the others."""
    try:
        return bytes(await stream.receive_some(RECEIVE_BYTES))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return b""


def _too_large() -> bytes:
    return orjson.dumps(error_body("too_large", "request body too large"))
