"""A small raw Phoenix Channels client for Python tests, on trio-websocket.

It speaks V1 (`vsn=1.0.0` or no `vsn`, JSON objects) and V2 (`vsn=2.0.0`, JSON arrays and
binary frames) exactly as PHOENIX_PROTOCOL.md §2 describes, with its own encoder and decoder for
the client side of the wire (C→S encoding, S→C decoding), written independently of
`parley.api.socket.phoenix.serializer` so each checks the other.

    async with open_phoenix_client(url, token=jwt) as client:
        reply = await client.join("conversation:1", {})
        assert reply.status == "ok"
        reply = await client.push("conversation:1", "new_msg", {"body": "hi"})
        broadcast = await client.receive(event="new_msg", topic="conversation:1")

Every frame the server sends is kept in an inbox until a `receive` / reply wait consumes it, so
tests never race the reader. Raw `send_text` / `send_bytes` / `send_frame` allow malformed and
edge-case frames (stale join refs, integer refs, ...). `url` is the socket base as for
phoenix.js (`ws://host:port/socket`); `/websocket` is appended unless already present.
"""

from __future__ import annotations

import base64
import itertools
import math
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from parley.api.socket.core.message import Message, Ref
from tests.websocket_client import client_websocket

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

AUTH_TOKEN_PREFIX: Final = "base64url.bearer.phx."
_CURRENT: Final[Any] = object()  # "use the topic's current join_ref"


class PhoenixClientClosedError(Exception):
    """The server closed the connection (or it dropped) before the awaited frame arrived."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"connection closed: code={code} reason={reason!r}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClientReply:
    """A `phx_reply` as the client sees it; `message` is the whole frame (refs, topic)."""

    status: str
    response: Any
    message: Message

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# -- client-side codec ---------------------------------------------------------------------


def encode_client_frame(
    vsn: str | None, join_ref: Ref, ref: Ref, topic: str, event: str, payload: Any
) -> str | bytes:
    """Encode a C→S frame: V1 object, V2 array, or V2 binary push (kind 0, 5-byte header)."""
    if vsn is not None and vsn.startswith("2."):
        if isinstance(payload, bytes):
            metas = [_text(join_ref), _text(ref), topic.encode(), event.encode()]
            return bytes([0, *map(len, metas)]) + b"".join(metas) + payload
        return orjson.dumps([join_ref, ref, topic, event, payload]).decode()
    if isinstance(payload, bytes):
        raise ValueError("V1 cannot send binary payloads")
    frame = {"topic": topic, "event": event, "payload": payload, "ref": ref}
    if join_ref is not None:
        frame["join_ref"] = join_ref
    return orjson.dumps(frame).decode()


def decode_server_frame(vsn: str | None, data: str | bytes) -> Message:
    """Decode an S→C frame the way phoenix.js does (`serializer.js`), V1 objects included."""
    if isinstance(data, bytes):
        return _decode_server_binary(data)
    value = orjson.loads(data)
    if isinstance(value, list):
        join_ref, ref, topic, event, payload = value[:5]
        return Message(join_ref, ref, topic, event, payload)
    return Message(
        value.get("join_ref"), value["ref"], value["topic"], value["event"], value["payload"]
    )


def _decode_server_binary(data: bytes) -> Message:
    kind = data[0]
    if kind == 0:  # push: 4-byte header, no ref
        sizes, offset = list(data[1:4]), 4
    elif kind == 1:  # reply: 5-byte header
        sizes, offset = list(data[1:5]), 5
    elif kind == 2:  # broadcast: 3-byte header
        sizes, offset = list(data[1:3]), 3
    else:
        raise ValueError(f"unknown binary frame kind {kind}")
    fields = []
    for size in sizes:
        fields.append(data[offset : offset + size].decode())
        offset += size
    payload = data[offset:]
    if kind == 0:
        join_ref, topic, event = fields
        return Message(join_ref, None, topic, event, payload)
    if kind == 1:
        join_ref, ref, topic, status = fields
        return Message(join_ref, ref, topic, "phx_reply", {"status": status, "response": payload})
    topic, event = fields
    return Message(None, None, topic, event, payload)


def _text(ref: Ref) -> bytes:
    return b"" if ref is None else str(ref).encode()


def auth_token_protocols(token: str) -> list[str]:
    """The `Sec-WebSocket-Protocol` offer phoenix.js makes for `authToken` (§3.2)."""
    encoded = base64.b64encode(token.encode("latin-1")).decode().replace("=", "")
    return ["phoenix", AUTH_TOKEN_PREFIX + encoded]


def socket_url(
    url: str, *, token: str | None, params: Mapping[str, str] | None, vsn: str | None
) -> str:
    """The upgrade URL: `{base}/websocket?{params}&token=..&vsn=..` (vsn last, as phoenix.js)."""
    base = url if url.rstrip("/").endswith("/websocket") else url.rstrip("/") + "/websocket"
    query: dict[str, str] = dict(params or {})
    if token is not None:
        query["token"] = token
    if vsn is not None:
        query["vsn"] = vsn
    return f"{base}?{urlencode(query)}" if query else base


# -- the client ----------------------------------------------------------------------------


class PhoenixClient:
    """One connection. Use `open_phoenix_client` to create it."""

    def __init__(self, ws: WebSocketConnection, vsn: str | None) -> None:
        self.ws = ws
        self.vsn = vsn
        self.join_refs: dict[str, str] = {}
        """Current join_ref per joined topic (set on an ok join reply, removed on leave)."""
        self.raw_frames: list[str | bytes] = []
        """Every frame received, undecoded, in order (for exact-bytes assertions)."""
        self._refs = itertools.count(1)
        self._inbox: list[Message] = []
        self._arrived = trio.Event()
        self._close: tuple[int | None, str | None] | None = None
        self._auto_heartbeat_refs: set[str] = set()

    @property
    def is_v2(self) -> bool:
        return self.vsn is not None and self.vsn.startswith("2.")

    @property
    def inbox(self) -> list[Message]:
        """Frames received and not yet consumed (a copy)."""
        return list(self._inbox)

    @property
    def close_reason(self) -> tuple[int | None, str | None] | None:
        """(code, reason) once the connection has closed, else None."""
        return self._close

    def next_ref(self) -> str:
        """A fresh ref, from one socket-wide counter like phoenix.js."""
        return str(next(self._refs))

    # -- sending -------------------------------------------------------------------------

    async def send_text(self, data: str) -> None:
        """Send a raw text frame."""
        await self.ws.send_message(data)

    async def send_bytes(self, data: bytes) -> None:
        """Send a raw binary frame."""
        await self.ws.send_message(data)

    async def send_frame(
        self, join_ref: Ref, ref: Ref, topic: str, event: str, payload: Any = None
    ) -> None:
        """Encode and send one frame with exactly these fields (payload defaults to `{}`)."""
        frame = encode_client_frame(
            self.vsn, join_ref, ref, topic, event, {} if payload is None else payload
        )
        await self.ws.send_message(frame)

    async def join(self, topic: str, payload: Any = None, *, timeout: float = 5.0) -> ClientReply:  # noqa: ASYNC109 (test helper API: per-call deadlines)
        """Send `phx_join` (join_ref = ref) and wait for its reply; remembers the join_ref if ok."""
        ref = self.next_ref()
        await self.send_frame(ref, ref, topic, "phx_join", payload)
        reply = await self.wait_reply(ref, topic=topic, timeout=timeout)
        if reply.ok:
            self.join_refs[topic] = ref
        return reply

    async def leave(self, topic: str, *, timeout: float = 5.0) -> ClientReply:  # noqa: ASYNC109 (test helper API: per-call deadlines)
        """Send `phx_leave` for the current join and wait for the reply."""
        ref = self.next_ref()
        await self.send_frame(self.join_refs.get(topic), ref, topic, "phx_leave", {})
        reply = await self.wait_reply(ref, topic=topic, timeout=timeout)
        self.join_refs.pop(topic, None)
        return reply

    async def push(
        self,
        topic: str,
        event: str,
        payload: Any = None,
        *,
        join_ref: Any = _CURRENT,
        timeout: float = 5.0,  # noqa: ASYNC109 (test helper API: per-call deadlines)
    ) -> ClientReply:
        """Send an event (with the topic's current join_ref unless given) and wait for the reply."""
        ref = self.next_ref()
        await self.push_nowait(topic, event, payload, join_ref=join_ref, ref=ref)
        return await self.wait_reply(ref, topic=topic, timeout=timeout)

    async def push_nowait(
        self,
        topic: str,
        event: str,
        payload: Any = None,
        *,
        join_ref: Any = _CURRENT,
        ref: Ref = None,
    ) -> Ref:
        """Send an event without waiting; returns the ref used (fresh unless given)."""
        ref = self.next_ref() if ref is None else ref
        if join_ref is _CURRENT:
            join_ref = self.join_refs.get(topic)
        await self.send_frame(join_ref, ref, topic, event, payload)
        return ref

    async def heartbeat(self, *, timeout: float = 5.0) -> ClientReply:  # noqa: ASYNC109 (test helper API: per-call deadlines)
        """Send a heartbeat (F15) and wait for its reply (F16)."""
        ref = self.next_ref()
        await self.send_frame(None, ref, "phoenix", "heartbeat", {})
        return await self.wait_reply(ref, topic="phoenix", timeout=timeout)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the WebSocket from the client side."""
        await self.ws.aclose(code, reason)

    # -- receiving -----------------------------------------------------------------------

    async def receive(
        self,
        event: str | None = None,
        topic: str | None = None,
        *,
        ref: Any = _CURRENT,
        timeout: float = 5.0,  # noqa: ASYNC109 (test helper API: per-call deadlines)
    ) -> Message:
        """The oldest unconsumed frame matching `event` / `topic` (/ `ref`, if given).

        Raises `trio.TooSlowError` after `timeout` seconds, or `PhoenixClientClosedError` once the
        connection is closed and no buffered frame matches.
        """
        with trio.fail_after(timeout):
            while True:
                for index, message in enumerate(self._inbox):
                    if (
                        (event is None or message.event == event)
                        and (topic is None or message.topic == topic)
                        and (ref is _CURRENT or message.ref == ref)
                    ):
                        del self._inbox[index]
                        return message
                if self._close is not None:
                    raise PhoenixClientClosedError(*self._close)
                await self._arrived.wait()

    async def wait_reply(
        self,
        ref: Ref,
        *,
        topic: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 (test helper API: per-call deadlines)
    ) -> ClientReply:
        """The `phx_reply` carrying `ref`."""
        message = await self.receive("phx_reply", topic, ref=ref, timeout=timeout)
        payload = message.payload
        return ClientReply(payload["status"], payload["response"], message)

    async def expect_nothing(
        self, event: str | None = None, topic: str | None = None, *, within: float = 0.3
    ) -> None:
        """Assert that no frame matching `event` / `topic` arrives within `within` seconds."""
        try:
            message = await self.receive(event, topic, timeout=within)
        except (trio.TooSlowError, PhoenixClientClosedError):
            return
        raise AssertionError(f"unexpected frame {message!r}")

    async def wait_closed(self, *, timeout: float = 5.0) -> tuple[int | None, str | None]:  # noqa: ASYNC109 (test helper API: per-call deadlines)
        """Wait until the server closes the connection; returns (code, reason)."""
        with trio.fail_after(timeout):
            while self._close is None:
                await self._arrived.wait()
        return self._close

    async def _read(self) -> None:
        try:
            while True:
                data = await self.ws.get_message()
                self.raw_frames.append(data)
                message = decode_server_frame(self.vsn, data)
                if message.event == "phx_reply" and message.ref in self._auto_heartbeat_refs:
                    self._auto_heartbeat_refs.discard(str(message.ref))
                else:
                    self._inbox.append(message)
                self._wake()
        except ConnectionClosed as closed:
            reason = closed.reason
            self._close = (reason.code, reason.reason) if reason is not None else (None, None)
            self._wake()

    async def _heartbeat_forever(self, interval: float) -> None:
        while self._close is None:
            await trio.sleep(interval)
            ref = self.next_ref()
            self._auto_heartbeat_refs.add(ref)
            try:
                await self.send_frame(None, ref, "phoenix", "heartbeat", {})
            except ConnectionClosed:
                return

    def _wake(self) -> None:
        self._arrived.set()
        self._arrived = trio.Event()


@asynccontextmanager
async def open_phoenix_client(
    url: str,
    *,
    token: str | None = None,
    vsn: str | None = "2.0.0",
    params: Mapping[str, str] | None = None,
    auth_token: str | None = None,
    origin: str | None = None,
    heartbeat_interval: float | None = None,
    connect_timeout: float = 10.0,
) -> AsyncIterator[PhoenixClient]:
    """Connect, yield a `PhoenixClient`, and close on exit.

    `vsn=None` omits the parameter (the server must then speak V1). `auth_token` is offered in
    `Sec-WebSocket-Protocol` like phoenix.js's `authToken`. `heartbeat_interval` starts a
    background heartbeat whose replies are swallowed. A refused upgrade raises
    `trio_websocket.ConnectionRejected` (with `status_code`).
    """
    headers = [(b"origin", origin.encode())] if origin is not None else None
    protocols = auth_token_protocols(auth_token) if auth_token is not None else None
    try:
        async with (
            client_websocket(
                socket_url(url, token=token, params=params, vsn=vsn),
                subprotocols=protocols,
                extra_headers=headers,
                message_queue_size=math.inf,
                connect_timeout=connect_timeout,
            ) as ws,
            trio.open_nursery() as nursery,
        ):
            client = PhoenixClient(ws, vsn)
            nursery.start_soon(client._read)
            if heartbeat_interval is not None:
                nursery.start_soon(client._heartbeat_forever, heartbeat_interval)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # A failing test body should surface as its own exception, not wrapped by our nursery.
        leaf = _single_leaf(group)
        if leaf is None:
            raise
        raise leaf from None


def _single_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    while len(group.exceptions) == 1:
        only = group.exceptions[0]
        if not isinstance(only, BaseExceptionGroup):
            return only
        group = only
    return None
