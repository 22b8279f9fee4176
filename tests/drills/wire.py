"""A lean Phoenix V2 socket for the drills' load: replies found by ref, broadcasts counted.

`tests/phoenix_client.py` keeps every frame until a test consumes it, which suits exact
conversations; a drill sends thousands of messages and reads only the replies, so this client
answers each push's reply by its ref and keeps, of the broadcasts, the `new_msg` seqs per topic.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from tests.websocket_client import client_websocket


@dataclass
class Reply:
    status: str
    response: Any


@dataclass
class DrillSocket:
    ws: WebSocketConnection
    _refs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _waiting: dict[str, tuple[trio.Event, list[Reply]]] = field(default_factory=dict)
    join_refs: dict[str, str] = field(default_factory=dict)
    seqs: defaultdict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    """`new_msg` seqs received per topic (broadcasts and catch-up alike)."""
    live: defaultdict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    """Seqs that arrived as broadcasts (`new_msg` on a conversation, `message` on `user:`), not
    as a join's catch-up."""
    events: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    """How many frames of each event arrived (replies excluded)."""
    closed: tuple[int | None, str | None] | None = None

    async def request(
        self,
        topic: str,
        event: str,
        payload: Any,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 (a drill's per-push deadline)
        join_ref: str | None = None,
    ) -> Reply | None:
        """Push and wait for the reply; None when none came within `timeout` or the socket
        closed."""
        ref = str(next(self._refs))
        done = trio.Event()
        box: list[Reply] = []
        self._waiting[ref] = (done, box)
        frame = [join_ref or self.join_refs.get(topic), ref, topic, event, payload]
        try:
            await self.ws.send_message(orjson.dumps(frame).decode())
            with trio.move_on_after(timeout):
                await done.wait()
        except ConnectionClosed:
            pass
        finally:
            self._waiting.pop(ref, None)
        return box[0] if box else None

    async def join(self, topic: str, payload: Any = None, **kwargs: Any) -> Reply | None:
        ref = str(next(self._refs))
        reply = await self.request(topic, "phx_join", payload or {}, join_ref=ref, **kwargs)
        if reply is not None and reply.status == "ok":
            self.join_refs[topic] = ref
            for message in (reply.response or {}).get("messages", ()):
                self.seqs[topic].add(message["seq"])
        return reply

    async def read(self) -> None:
        try:
            while True:
                data = await self.ws.get_message()
                _join_ref, ref, topic, event, payload = orjson.loads(data)[:5]
                if event == "phx_reply":
                    waiting = self._waiting.get(str(ref))
                    if waiting is not None:
                        waiting[1].append(Reply(payload["status"], payload["response"]))
                        waiting[0].set()
                    continue
                self.events[event] += 1
                if event == "phx_close":
                    self.join_refs.pop(topic, None)
                if event in ("new_msg", "message"):
                    self.seqs[topic].add(payload["seq"])
                    self.live[topic].add(payload["seq"])
        except ConnectionClosed as closed:
            reason = closed.reason
            self.closed = (reason.code, reason.reason) if reason else (None, None)
            for done, _ in self._waiting.values():
                done.set()

    async def heartbeat_forever(self, interval: float) -> None:
        while self.closed is None:
            await trio.sleep(interval)
            try:
                await self.ws.send_message(
                    orjson.dumps(
                        [None, f"hb{next(self._refs)}", "phoenix", "heartbeat", {}]
                    ).decode()
                )
            except ConnectionClosed:
                return


@asynccontextmanager
async def drill_socket(
    url: str, token: str, *, heartbeat_seconds: float = 20.0
) -> AsyncIterator[DrillSocket]:
    """A connected socket (`url` as for phoenix.js: ws://host:port/socket), closed on exit."""
    async with client_websocket(
        f"{url}/websocket?vsn=2.0.0&token={token}", message_queue_size=math.inf
    ) as ws:
        socket = DrillSocket(ws)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(socket.read)
            nursery.start_soon(socket.heartbeat_forever, heartbeat_seconds)
            yield socket
            nursery.cancel_scope.cancel()
