"""Long polling: the Phoenix socket over plain HTTP at `/socket/longpoll` (PHOENIX_PROTOCOL.md §8).

The third transport over the protocol core, built like the other two (its `Authorize`,
`SocketHub.open_session`, `transport.pump`, `SocketHub.end_session`); only its `Connection` differs:
POSTs feed the reader, polls drain the writer. A route of the Quart app (the fast path's listener
passes it to Hypercorn). Requests, statuses, bad input, limits: docs/realtime.md ("Long polling").

Here: the session table, its bounds, and the HTTP endpoint. A session's `Connection` (and the
POST bodies that feed it) is `longpoll_connection`, its signed token `longpoll_tokens`. Every poll
answer brings a fresh token living a window plus a session timeout, and a session answers only
requests that present the credential that opened it, or none.

Liveness: long-poll clients send no heartbeats (§8.6), so a session's `last_frame_at` is held at
infinity and the hub's heartbeat watch leaves it alone; a session with no poll outstanding for
`longpoll_session_timeout_seconds` ends instead (the deadline of the cancel scope its pump runs in).
Memory per session is a websocket's (the outbound queue) plus the one batch its writer holds out
to the next poll and at most one POST body in flight.
"""

from __future__ import annotations

import base64
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode

import orjson
import trio
from quart import Response, request
from quart_cors import cors_exempt

from parley.api.errors import error_body
from parley.api.socket.core.hub import SessionHandle, SocketHub
from parley.api.socket.core.transport import (
    Accepted,
    Authorize,
    ConnectionInfo,
    ConnectRequest,
    pump,
)
from parley.api.socket.phoenix.connect import AUTH_TOKEN_PREFIX, origin_allowed
from parley.api.socket.transports.longpoll_connection import (
    BadBody,
    LongPollConnection,
    parse_body,
)
from parley.api.socket.transports.longpoll_tokens import (
    TOKEN_PREFIX,
    SessionTokens,
    credential_digest,
)

if TYPE_CHECKING:
    from quart_trio import QuartTrio


log = logging.getLogger(__name__)

NDJSON: Final = "application/x-ndjson"
_HEADERS: Final = {"cache-control": "no-store", "access-control-allow-origin": "*"}
_PREFLIGHT: Final = {
    "access-control-allow-methods": "get, post, options",
    "access-control-max-age": "3600",
}
_METHODS: Final = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"]


def longpoll_path(socket_path: str) -> str:
    """Where phoenix.js looks: it swaps the endpoint's trailing `/websocket` for `/longpoll`."""
    return f"{socket_path.removesuffix('/websocket')}/longpoll"


@dataclass(eq=False, slots=True)
class _Session:
    id: bytes
    user_id: uuid.UUID
    handle: SessionHandle
    connection: LongPollConnection
    credential: bytes | None
    """SHA-256 of the token that opened the session."""


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    headers = {**_HEADERS, **headers, "content-type": "application/json; charset=utf-8"}
    return Response(orjson.dumps(body), status=status, headers=headers)


def _error(http_status: int, code: str, message: str, *, status: int | None = None) -> Response:
    """The error shape with the `status` a long-poll client acts on (phoenix.js: any but 200 ends
    a POST's session; on a GET only 500 makes it retry, an unknown status stalls it)."""
    headers = {"retry-after": "5"} if http_status in (429, 503) else {}
    body = {"status": http_status if status is None else status, **error_body(code, message)}
    return _json(body, http_status, **headers)


class LongPollTransport:
    """The long-poll sessions of one app: their table, their tasks, and the HTTP endpoint."""

    def __init__(self, hub: SocketHub, authorize: Authorize) -> None:
        self.hub = hub
        self._authorize = authorize
        self.settings = settings = hub.settings.socket
        self.window = settings.longpoll_window_seconds
        self.timeout = settings.longpoll_session_timeout_seconds
        secret = hub.settings.auth.jwt_secret
        if secret is None:
            raise ValueError("auth.jwt_secret is not set (use config.with_jwt_secret)")
        self.tokens = SessionTokens(secret, self.window + self.timeout)
        self._sessions: dict[bytes, _Session] = {}
        self._count = 0
        """Sessions, counting those being opened: what the bounds are checked against."""
        self._per_user: dict[uuid.UUID, int] = {}
        self._nursery: trio.Nursery | None = None

    @property
    def held_polls(self) -> int:
        return sum(session.connection.polls for session in self._sessions.values())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the nursery the sessions' pumps run in, until `stop` (the app stops serving)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def stop(self) -> None:
        """End every session now (the server is stopping: no poll would come for them)."""
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def endpoint(self) -> Response:
        method = request.method
        if method == "OPTIONS":
            return self._preflight()
        if method not in ("GET", "POST"):
            return _error(400, "bad_request", "long polling takes GET, POST and OPTIONS")
        session_token, auth_token, query = _tokens()
        connect = ConnectRequest(
            path=request.path,
            query_string=query,
            headers={name.lower(): value for name, value in request.headers.items()},
            # The connect check reads phoenix.js's authToken in its WebSocket form, the offer
            # phoenix.js's own LongPoll decodes it from (§3.2).
            subprotocols=() if auth_token is None else (_as_offer(auth_token),),
            peer=request.remote_addr,
        )
        if method == "GET" and session_token is None:
            return await self._open(connect, auth_token or connect.query.get("token"))
        settings = self.hub.settings
        if not origin_allowed(connect, settings.socket, prod=settings.server.env == "prod"):
            return _json({"status": 403})
        session = self._resolve(session_token, auth_token or connect.query.get("token"))
        if session is None:
            self.hub.count("longpoll_gone")
            return _json({"status": 410})
        if method == "GET":
            return await self._poll(session)
        return await self._post(session)

    def _preflight(self) -> Response:
        headers = {**_HEADERS, **_PREFLIGHT}
        if requested := request.headers.get("access-control-request-headers"):
            headers["access-control-allow-headers"] = requested
        return Response(b"", status=200, headers=headers)

    async def _open(self, connect: ConnectRequest, credential: str | None) -> Response:
        hub = self.hub
        try:
            decision = await self._authorize(connect)
        except Exception:
            log.exception("long-poll connect check failed")
            hub.count("refused_unavailable")
            return _error(503, "unavailable", "cannot check the token now", status=500)
        if not isinstance(decision, Accepted):
            hub.count(f"refused_{decision.reason}")
            return _json({"status": 403})
        user = decision.principal.user_id
        if self._count >= self.settings.longpoll_max_sessions:
            hub.count("refused_longpoll_sessions")
            return _error(503, "unavailable", "too many long-poll sessions", status=500)
        if self._per_user.get(user, 0) >= self.settings.longpoll_max_sessions_per_user:
            hub.count("refused_longpoll_user_sessions")
            return _error(429, "too_many_sessions", "too many long-poll sessions", status=500)
        self._count += 1  # taken before the await, so concurrent opens cannot overshoot
        self._per_user[user] = self._per_user.get(user, 0) + 1
        try:
            info = ConnectionInfo("longpoll", "phoenix", connect.peer)
            handle = await hub.open_session(decision.principal, decision.serializer, info)
        except Exception:
            log.exception("could not start a long-poll session")
            self._release(user)
            hub.count("refused_unavailable")
            return _error(503, "unavailable", "cannot start a session now", status=500)
        nursery = self._nursery
        if nursery is None:  # not serving (yet, or any more)
            self._release(user)
            await hub.end_session(handle)
            return _error(503, "unavailable", "not serving", status=500)
        connection = LongPollConnection(hub, handle, self.timeout)
        digest = None if credential is None else credential_digest(credential)
        session = _Session(secrets.token_bytes(16), user, handle, connection, digest)
        self._sessions[session.id] = session
        nursery.start_soon(self._run, session)
        hub.count("longpoll_opened")
        token = self.tokens.issue(session.id, user)
        return _json({"status": 410, "token": token, "messages": []})

    def _resolve(self, token: str | None, credential: str | None) -> _Session | None:
        found = None if token is None else self.tokens.verify(token)
        if found is None:
            return None
        session_id, user = found
        session = self._sessions.get(session_id)
        if session is None or session.user_id != user:
            return None
        if credential is not None and session.credential != credential_digest(credential):
            return None
        return session

    async def _poll(self, session: _Session) -> Response:
        frames = await session.connection.poll(self.window)
        if frames is None:
            self.hub.count("longpoll_gone")
            return _json({"status": 410})
        token = self.tokens.issue(session.id, session.user_id)
        messages = [frame.text() for frame in frames]
        return _json({"status": 200 if messages else 204, "token": token, "messages": messages})

    async def _post(self, session: _Session) -> Response:
        body = await request.get_data(cache=True, as_text=False, parse_form_data=False)
        limit = self.settings.longpoll_max_body_bytes
        if len(body) > limit:
            self.hub.count("longpoll_bad_posts")
            return _error(413, "too_large", f"a POST carries at most {limit} bytes")
        try:
            ndjson = request.mimetype == NDJSON
            frames = parse_body(body, ndjson=ndjson, max_lines=self.settings.longpoll_max_lines)
        except BadBody as bad:
            self.hub.count("longpoll_bad_posts")
            return _error(400, "bad_request", str(bad))
        status = await session.connection.post(frames, self.window) if frames else 200
        if status == 408:
            self.hub.count("longpoll_post_timeouts")
        return _json({"status": status})

    async def _run(self, session: _Session) -> None:
        """Pump the session until it ends or times out, then stop it and forget it."""
        connection, handle = session.connection, session.handle
        try:
            with connection.idle:
                await pump(connection, handle, handle.outbound)
            if connection.idle.cancelled_caught:
                self.hub.count("longpoll_timeouts")
                handle.transport_closed()
        except Exception:  # a bug here must not take the other sessions' nursery down
            log.exception("long-poll session %s failed", handle.name)
        finally:
            connection.end()
            del self._sessions[session.id]
            self._release(session.user_id)
            with trio.CancelScope(shield=True):
                await self.hub.end_session(handle)

    def _release(self, user: uuid.UUID) -> None:
        self._count -= 1
        left = self._per_user[user] - 1
        if left:
            self._per_user[user] = left
        else:
            del self._per_user[user]


def _tokens() -> tuple[str | None, str | None, str]:
    """(session token, auth token, the query without session tokens) of the current request.

    The session token: `X-Phoenix-Longpoll-Token`, else the last `token` parameter with the
    prefix. The auth token: `X-Phoenix-AuthToken`, or else the `token` parameter left in the query.
    """
    pairs = parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True)
    ours = [value for key, value in pairs if key == "token" and value.startswith(TOKEN_PREFIX)]
    kept = [(key, value) for key, value in pairs if key != "token" or value not in ours]
    session_token = request.headers.get("x-phoenix-longpoll-token") or (ours[-1] if ours else None)
    return session_token, request.headers.get("x-phoenix-authtoken") or None, urlencode(kept)


def _as_offer(token: str) -> str:
    encoded = base64.b64encode(token.encode("latin-1")).decode("ascii")  # headers are Latin-1
    return AUTH_TOKEN_PREFIX + encoded.rstrip("=")


def install(app: QuartTrio, transport: LongPollTransport) -> None:
    """Serve long polling beside the websocket at `longpoll_path(socket.path)`."""
    hub = transport.hub

    async def socket_longpoll() -> Response:
        return await transport.endpoint()

    app.add_url_rule(
        longpoll_path(hub.settings.socket.path),
        "socket_longpoll",
        cors_exempt(socket_longpoll),  # our own `access-control-*` answers, as Phoenix's
        methods=_METHODS,
    )

    @app.before_serving
    async def start_longpoll() -> None:
        await app.nursery.start(transport.run)

    @app.after_serving
    async def stop_longpoll() -> None:
        transport.stop()
