"""Long polling: the Phoenix socket over plain HTTP at `/socket/longpoll` (PHOENIX_PROTOCOL.md §8).

The third transport over the protocol core, built like the other two (its `Authorize`,
`SocketHub.open_session`, `transport.pump`, `SocketHub.end_session`); only its `Connection` differs:
POSTs feed the reader, polls drain the writer. A route of the Quart app (the fast path's listener
passes it to Hypercorn). Requests, statuses, bad input, limits: docs/realtime.md ("Long polling").

Session tokens are `lp1.<base64url(session id, user id, expiry)>.<base64url(HMAC-SHA256)>`, keyed
from `auth.jwt_secret`; the prefix (a JWT starts `eyJ`) tells them from the user's own `token`
parameter, which phoenix.js sends first, the session token appended. Every poll answer brings a
fresh one living a window plus a session timeout, and a session answers only requests that present
the credential that opened it, or none.

Liveness: long-poll clients send no heartbeats (§8.6), so a session's `last_frame_at` is held at
infinity and the hub's heartbeat watch leaves it alone; a session with no poll outstanding for
`longpoll_session_timeout_seconds` ends instead (the deadline of the cancel scope its pump runs in).
Memory per session is a websocket's (the outbound queue) plus the one batch its writer holds out
to the next poll and at most one POST body in flight.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
import struct
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode

import orjson
import trio
from quart import Response, request
from quart_cors import cors_exempt

from parley.api.errors import error_body
from parley.api.socket.core.hub import SessionHandle, SocketHub
from parley.api.socket.core.message import Frame
from parley.api.socket.core.transport import (
    Accepted,
    Authorize,
    ConnectionInfo,
    ConnectRequest,
    InboundFrame,
    pump,
)
from parley.api.socket.phoenix.connect import AUTH_TOKEN_PREFIX, origin_allowed

if TYPE_CHECKING:
    from quart_trio import QuartTrio


log = logging.getLogger(__name__)

TOKEN_PREFIX: Final = "lp1."
NDJSON: Final = "application/x-ndjson"
_KEY_LABEL: Final = b"parley long-poll session token v1"
_PAYLOAD: Final = struct.Struct(">16s16sd")
"""Session id, user id, expiry (trio's clock: tokens only mean something to this process)."""
_MAX_TOKEN_CHARS: Final = 256
_HEADERS: Final = {"cache-control": "no-store", "access-control-allow-origin": "*"}
_PREFLIGHT: Final = {
    "access-control-allow-methods": "get, post, options",
    "access-control-max-age": "3600",
}
_METHODS: Final = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"]


def longpoll_path(socket_path: str) -> str:
    """Where phoenix.js looks: it swaps the endpoint's trailing `/websocket` for `/longpoll`."""
    return f"{socket_path.removesuffix('/websocket')}/longpoll"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:  # one spelling per token: no malleable variants
        raise ValueError("not canonical base64url")
    return raw


class SessionTokens:
    """Signs session tokens and checks them (signature, expiry) without any look-up."""

    def __init__(self, secret: str, ttl_seconds: float) -> None:
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self._ttl = ttl_seconds

    def issue(self, session_id: bytes, user_id: uuid.UUID, *, expires: float | None = None) -> str:
        """A token for the session; `expires` (trio's clock) defaults to now plus the ttl."""
        until = trio.current_time() + self._ttl if expires is None else expires
        payload = _PAYLOAD.pack(session_id, user_id.bytes, until)
        return f"{TOKEN_PREFIX}{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str) -> tuple[bytes, uuid.UUID] | None:
        """(session id, user id) of a good, unexpired token; None for anything else."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN_CHARS:
            return None
        body, _, mac = token[len(TOKEN_PREFIX) :].partition(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except ValueError:  # bad base64 (binascii.Error) or non-ASCII
            return None
        if len(payload) != _PAYLOAD.size or not hmac.compare_digest(given, self._mac(payload)):
            return None
        session_id, user, expires = _PAYLOAD.unpack(payload)
        if expires < trio.current_time():
            return None
        return session_id, uuid.UUID(bytes=user)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


def _digest(credential: str) -> bytes:
    return hashlib.sha256(credential.encode("utf-8", "surrogateescape")).digest()


@dataclass(eq=False, slots=True)
class _Batch:
    """The frames of one POST, handed to the session one by one by the pump's reader."""

    frames: list[InboundFrame]
    next: int = 0
    gone: bool = False
    """The session ended before every frame was handed over."""
    done: trio.Event = field(default_factory=trio.Event)


class LongPollConnection:
    """`transport.Connection` of one session: POSTs feed `receive`, polls take `send_frames`.

    Both meet the pump through unbuffered channels, so nothing queues here beyond the batch the
    writer holds out to the next poll: frames wait in the session's bounded outbound queue, and
    a client that stops polling becomes a slow consumer (1013) as on a websocket.
    """

    def __init__(self, hub: SocketHub, handle: SessionHandle, timeout: float) -> None:
        self._hub = hub
        self._handle = handle
        self._timeout = timeout
        self._batches_in, self._batches = trio.open_memory_channel[_Batch](0)
        self._offers_in, self._offers = trio.open_memory_channel[list[Frame]](0)
        self._batch: _Batch | None = None
        self._post_lock = trio.Lock()
        self.polls = 0
        """Polls of this session being held (at most one for long, see `poll`)."""
        self._poll_scope: trio.CancelScope | None = None
        self.idle = trio.CancelScope(deadline=trio.current_time() + timeout)
        """The scope the pump runs in: its deadline is the session timeout while no poll is
        outstanding, infinity while one is."""
        handle.last_frame_at = math.inf

    async def receive(self) -> InboundFrame | None:
        # The pump asks for the next frame once the previous one is in the session's mailbox.
        self._handle.last_frame_at = math.inf  # `SessionHandle.inbound` set it to now
        batch = self._batch
        if batch is not None:
            if batch.next < len(batch.frames):
                batch.next += 1
                return batch.frames[batch.next - 1]
            self._batch = None
            batch.done.set()
        batch = self._batch = await self._batches.receive()
        batch.next = 1
        return batch.frames[0]

    async def send_frames(self, frames: list[Frame]) -> None:
        texts = [frame for frame in frames if not frame.binary]
        if len(texts) < len(frames):  # §8.6: messages are JSON strings, binary cannot go
            self._hub.count("longpoll_binary_dropped", len(frames) - len(texts))
        if texts:
            await self._offers_in.send(texts)  # returns once a poll took them

    async def close(self, code: int, reason: str) -> None:
        # No close frame over HTTP: every waiting and later poll gets 410, and the client
        # reconnects, which is what each of the session's close codes asks for.
        self._offers_in.close()
        await trio.lowlevel.checkpoint()

    async def poll(self, window: float) -> list[Frame] | None:
        """Frames for a poll: some, [] after `window` (or when a newer poll takes over), or None
        once the session is over."""
        if self._poll_scope is not None:
            self._poll_scope.cancel()
        self.polls += 1
        self.idle.deadline = math.inf
        scope = self._poll_scope = trio.move_on_after(window)
        try:
            with scope:
                try:
                    return await self._offers.receive()
                except trio.EndOfChannel:
                    return None
            return []
        finally:
            if self._poll_scope is scope:
                self._poll_scope = None
            self.polls -= 1
            if not self.polls:
                self.idle.deadline = trio.current_time() + self._timeout

    async def post(self, frames: list[InboundFrame], window: float) -> int:
        """Hand `frames` to the session in order, one POST after the other: 200 once each is in
        its mailbox, 408 when that takes longer than `window`, 410 when the session ends first."""
        batch = _Batch(frames)
        with trio.move_on_after(window):
            async with self._post_lock:
                try:
                    await self._batches_in.send(batch)
                except trio.BrokenResourceError:
                    return 410
                await batch.done.wait()
            return 410 if batch.gone else 200
        return 408

    def end(self) -> None:
        """The pump is over: answer what waits (410) and refuse what comes."""
        self._offers_in.close()
        self._batches.close()
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.gone = True
            batch.done.set()


@dataclass(eq=False, slots=True)
class _Session:
    id: bytes
    user_id: uuid.UUID
    handle: SessionHandle
    connection: LongPollConnection
    credential: bytes | None
    """SHA-256 of the token that opened the session."""


class _BadBody(ValueError):
    """A POST body to refuse whole (400)."""


def parse_body(body: bytes, *, ndjson: bool, max_lines: int) -> list[InboundFrame]:
    """The frames of a POST body (§8.4), or `_BadBody` for a body not to hand over at all."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadBody("the body is not UTF-8") from None
    lines = [line.removesuffix("\r") for line in text.split("\n")] if ndjson else [text]
    lines = [line for line in lines if line]
    if len(lines) > max_lines:
        raise _BadBody(f"more than {max_lines} frames in one POST")
    frames: list[InboundFrame] = []
    for number, line in enumerate(lines, 1):
        if line[0] in "[{" or not ndjson:
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                raise _BadBody(f"line {number} is not JSON") from None
            frames.append(InboundFrame(line))
        else:
            try:
                frames.append(InboundFrame(base64.b64decode(line, validate=True)))
            except ValueError:  # binascii.Error
                raise _BadBody(f"line {number} is neither JSON nor base64") from None
    return frames


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
        digest = None if credential is None else _digest(credential)
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
        if credential is not None and session.credential != _digest(credential):
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
        except _BadBody as bad:
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
