"""A channel test harness in the manner of Phoenix's `ChannelTest`: the real channel core, no
network, no PostgreSQL.

`ChannelCase` runs a node's socket layer in the test's nursery (pubsub, presence, the sessions
supervisor, an actor system, the `SocketHub`) over a route table the test gives. `connect` opens
a real `SessionActor` whose transport is a `MemoryConnection`: the test hands it frames and reads
what the session wrote, encoded and decoded by the real V2 serializer. Joins, pushes, replies,
broadcasts, presence, `phx_close` and `phx_error` all go through the same code as on a socket.

Deterministic: frames are read after `wait_all_tasks_blocked`, so a test with the autojump clock
(`autojump_clock` fixture) never waits on wall time.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio
import trio.testing

from parley.actors.realtime.presence import Presence
from parley.actors.realtime.pubsub import LocalPubSub
from parley.actors.runtime import ActorSystem
from parley.api.socket.core.channel import ChannelFactory
from parley.api.socket.core.hub import SessionHandle, SocketHub
from parley.api.socket.core.message import Frame, Message
from parley.api.socket.core.principal import SocketPrincipal
from parley.api.socket.core.router import Router
from parley.api.socket.core.transport import ConnectionInfo, InboundFrame, pump
from parley.api.socket.phoenix.serializer import V2
from parley.config import Settings
from parley.supervision import DynamicSupervisor
from tests.phoenix_client import decode_server_frame, encode_client_frame

_users = itertools.count(1)


def principal(role: str = "registered", *, only_topic: str | None = None) -> SocketPrincipal:
    """A signed-in user made up for the test (channels that need no store need no row)."""
    n = next(_users)
    return SocketPrincipal(uuid.uuid4(), role, f"user{n}", "access", only_topic=only_topic)


class MemoryConnection:
    """`transport.Connection` in memory: the test sends client frames and reads server ones."""

    def __init__(self) -> None:
        self._to_server, self._from_client = trio.open_memory_channel[InboundFrame | None](64)
        self.frames: list[Frame] = []
        """Everything the server wrote, in order."""
        self.closed: tuple[int, str] | None = None

    async def receive(self) -> InboundFrame | None:
        return await self._from_client.receive()

    async def send_frames(self, frames: list[Frame]) -> None:
        self.frames.extend(frames)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    async def client_sends(self, data: str | bytes) -> None:
        await self._to_server.send(InboundFrame(data))

    async def client_leaves(self) -> None:
        await self._to_server.send(None)


@dataclass
class Reply:
    status: str
    response: Any


class ChannelClient:
    """One connection to the channel core, spoken to as phoenix.js would (V2 frames)."""

    def __init__(self, connection: MemoryConnection, handle: SessionHandle) -> None:
        self.connection = connection
        self.handle = handle
        self._refs = itertools.count(1)
        self._read = 0
        self.join_refs: dict[str, str] = {}

    async def settle(self) -> None:
        """Let every task run until all wait (the session, its channels, the pump)."""
        await trio.testing.wait_all_tasks_blocked()

    def received(self) -> list[Message]:
        """Every frame the server sent, decoded, in order."""
        return [
            decode_server_frame(V2.vsn, frame.data if frame.binary else frame.text())
            for frame in self.connection.frames
        ]

    def take(self) -> list[Message]:
        """What arrived since the last `take` (or `join`/`push`, which take their reply)."""
        messages = self.received()[self._read :]
        self._read += len(messages)
        return messages

    def events(self, topic: str, event: str) -> list[Any]:
        """The payloads of every `event` on `topic` received so far."""
        return [m.payload for m in self.received() if m.topic == topic and m.event == event]

    async def send(
        self, join_ref: str | None, ref: str, topic: str, event: str, payload: Any
    ) -> None:
        await self.connection.client_sends(
            encode_client_frame(V2.vsn, join_ref, ref, topic, event, payload)
        )

    async def join(self, topic: str, payload: Any = None) -> Reply:
        ref = str(next(self._refs))
        await self.send(ref, ref, topic, "phx_join", {} if payload is None else payload)
        reply = await self._reply(ref)
        if reply.status == "ok":
            self.join_refs[topic] = ref
        return reply

    async def push(self, topic: str, event: str, payload: Any = None) -> Reply:
        ref = str(next(self._refs))
        await self.send(
            self.join_refs.get(topic), ref, topic, event, {} if payload is None else payload
        )
        return await self._reply(ref)

    async def leave(self, topic: str) -> Reply:
        ref = str(next(self._refs))
        await self.send(self.join_refs.pop(topic, None), ref, topic, "phx_leave", {})
        return await self._reply(ref)

    async def _reply(self, ref: str) -> Reply:
        await self.settle()
        for message in self.received():
            if message.event == "phx_reply" and message.ref == ref:
                return Reply(message.payload["status"], message.payload["response"])
        raise AssertionError(f"no reply to ref {ref}; received {self.received()!r}")


class ChannelCase:
    """The channel core of one node over `exact` and `prefixes` routes, in `nursery`."""

    def __init__(
        self,
        settings: Settings,
        nursery: trio.Nursery,
        *,
        exact: Mapping[str, ChannelFactory] | None = None,
        prefixes: Mapping[str, ChannelFactory] | None = None,
        presence_period: float = 0.0,
    ) -> None:
        self.settings = settings
        self.nursery = nursery
        self.pubsub = LocalPubSub()
        self.presence = Presence(self.pubsub, broadcast_period=presence_period)
        self.system = ActorSystem(settings.actors, settings.supervision)
        self.sessions = DynamicSupervisor("sessions", backoff_seconds=0)
        self.hub = SocketHub(
            settings,
            pubsub=self.pubsub,
            presence=self.presence,
            router=Router(exact or {}, prefixes or {}),
            system=self.system,
            sessions=self.sessions,
        )

    async def start(self) -> None:
        await self.nursery.start(self.sessions.run)
        await self.nursery.start(self.presence.run)

    async def connect(self, who: SocketPrincipal | None = None) -> ChannelClient:
        connection = MemoryConnection()
        handle = await self.hub.open_session(
            who or principal(), V2, ConnectionInfo("memory", "phoenix", None)
        )
        self.nursery.start_soon(self._serve, connection, handle)
        return ChannelClient(connection, handle)

    async def _serve(self, connection: MemoryConnection, handle: SessionHandle) -> None:
        try:
            await pump(connection, handle, handle.outbound)
        finally:
            with trio.CancelScope(shield=True):
                await self.hub.end_session(handle)


@asynccontextmanager
async def channel_case(
    settings: Settings,
    *,
    exact: Mapping[str, ChannelFactory] | None = None,
    prefixes: Mapping[str, ChannelFactory] | None = None,
    presence_period: float = 0.0,
) -> AsyncIterator[ChannelCase]:
    """A running `ChannelCase`, stopped (every session with it) when the block ends; presence
    diffs merged over `presence_period` seconds (`actors.presence_broadcast_ms`; 0: at once)."""
    async with trio.open_nursery() as nursery:
        case = ChannelCase(
            settings, nursery, exact=exact, prefixes=prefixes, presence_period=presence_period
        )
        await case.start()
        yield case
        nursery.cancel_scope.cancel()
