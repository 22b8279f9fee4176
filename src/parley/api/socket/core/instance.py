"""A `ChannelInstance`: one join of one topic on one socket (the channel's `socket`).

It is the pubsub subscriber for its topic and runs the channel's handlers in order, in a task of
its own only while it has events to handle (see `parley.api.socket.core.session` for the shape of
a session, and docs/realtime.md "Pushes without a task" for `handle_in_now`). It reaches its
session only through `InstanceOwner`, the few things it needs of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import trio

from parley.api.socket.core import message as m
from parley.api.socket.core.channel import HANDLE_IN_TASK, Channel, HandlerResult, StopChannel
from parley.api.socket.core.message import Broadcast, Frame, Message, Reply
from parley.api.socket.core.serializer import EncodeError

if TYPE_CHECKING:
    from parley.api.socket.core.outbound import OutboundQueue
    from parley.api.socket.core.principal import SocketPrincipal
    from parley.api.socket.core.serializer import Serializer
    from parley.api.socket.core.services import SocketServices


@dataclass(frozen=True, slots=True)
class Leave:
    """A `phx_leave` queued behind the events the instance has not handled yet."""

    message: Message


class InstanceOwner(Protocol):
    """What a channel instance needs of the session that owns it (`SessionActor`)."""

    @property
    def principal(self) -> SocketPrincipal: ...

    @property
    def serializer(self) -> Serializer: ...

    @property
    def services(self) -> SocketServices: ...

    @property
    def outbound(self) -> OutboundQueue: ...

    def joined_topics(self) -> frozenset[str]: ...

    def has_joined(self, topic: str) -> bool: ...

    def send(self, item: Message | Reply) -> None: ...

    def enqueue(self, frame: Frame) -> None: ...

    def count(self, name: str) -> None: ...

    def slow_consumer(self) -> None: ...

    def channel_crashed(self, instance: ChannelInstance, error: Exception) -> None: ...

    def finish(self, instance: ChannelInstance, reason: str, frame: Message | None) -> None: ...

    def apply_result(self, instance: ChannelInstance, message: Message, result: object) -> bool: ...

    def channel_nursery(self) -> trio.Nursery: ...


# -- one joined channel -----------------------------------------------------------------------

JOINING, JOINED, CLOSED = 0, 1, 2
"""An instance's states: joining (broadcasts wait behind the join reply), joined, closed."""


class ChannelInstance:
    """One join of one topic on one socket: the pubsub subscriber and the handler's task.

    Channels talk to the socket only through this object (push, broadcast, presence), so a
    handler never touches the session's internals.
    """

    __slots__ = (
        "_offering",
        "_pending",
        "_queue",
        "_room",
        "_scope",
        "_working",
        "channel",
        "join_ref",
        "serializer",
        "session",
        "state",
        "topic",
        "topics",
    )

    def __init__(self, session: InstanceOwner, topic: str, join_ref: m.Ref) -> None:
        self.session = session
        self.serializer = session.serializer
        self.topic = topic
        self.join_ref = join_ref
        self.state = JOINING
        self.channel: Channel | None = None
        self.topics: list[str] = []
        self._pending: list[Broadcast] = []
        self._queue: list[Message | Leave] = []
        """Events waiting for the handler, at most `actors.channel_mailbox` (a short list: an
        empty deque would cost a 0.5 KB block per idle channel); a full queue makes the
        session's reader wait (backpressure to the client), never drops."""
        self._room: trio.Event | None = None
        """Set when the queue has room again, for a reader waiting on a full queue."""
        self._working = False
        self._offering = False
        """True while `handle_in_now` runs: an answer given inside it leaves the next queued
        event to `_offer_queued`'s loop instead of recursing into it."""
        self._scope: trio.CancelScope | None = None
        """The running handler task's scope (None when there is no task)."""

    def __repr__(self) -> str:
        return f"<ChannelInstance {self.topic} join_ref={self.join_ref!r}>"

    # -- what channels use ----------------------------------------------------------------

    @property
    def principal(self) -> SocketPrincipal:
        return self.session.principal

    def joined_topics(self) -> frozenset[str]:
        """Topics this socket has joined right now."""
        return self.session.joined_topics()

    def has_joined(self, topic: str) -> bool:
        """Whether this socket has `topic` joined right now (cheap: for handle_out intercepts)."""
        return self.session.has_joined(topic)

    def push(self, event: str, payload: Any) -> None:
        """Send `event` to this client only (F9): the channel's join_ref, ref null."""
        if self.state != CLOSED:
            self.session.send(m.push(self.join_ref, self.topic, event, payload))

    def broadcast(self, event: str, payload: Any) -> int:
        """`event` to every subscriber of the topic, this one included."""
        return self.session.services.pubsub.publish(self.topic, event, payload)

    def broadcast_from(self, event: str, payload: Any) -> int:
        """`event` to every subscriber of the topic but this channel instance (§14 item 25)."""
        return self.session.services.pubsub.publish_from(self, self.topic, event, payload)

    def subscribe(self, topic: str) -> None:
        """Also take broadcasts of `topic`; they reach the channel's `handle_out`."""
        if topic not in self.topics:
            self.topics.append(topic)
            self.session.services.pubsub.subscribe(topic, self)

    def track(self, key: str, meta: dict[str, Any]) -> str:
        """Presence on this topic for as long as this instance lives; returns the `phx_ref`."""
        return self.session.services.presence.track(self.topic, self, key, meta)

    def update_presence(self, key: str, meta: dict[str, Any]) -> str:
        return self.session.services.presence.update(self.topic, self, key, meta)

    def presence_state(self) -> dict[str, Any]:
        return self.session.services.presence.list(self.topic)

    # -- pubsub (the hot path) -----------------------------------------------------------

    def deliver(self, broadcast: Broadcast) -> None:
        state = self.state
        if state == JOINED:
            channel = self.channel
            assert channel is not None
            if broadcast.topic != self.topic or broadcast.event in channel.intercept:
                try:
                    out = channel.handle_out(broadcast)
                except Exception as exc:
                    self.session.channel_crashed(self, exc)
                    return
                if out is None:
                    return
                if isinstance(out, Message):
                    self.session.send(out)
                    return
                if isinstance(out, StopChannel):
                    # Unsubscribed before the publisher's next broadcast: nothing after this one
                    # reaches the instance.
                    self.session.finish(
                        self, out.reason, m.close_message(self.topic, self.join_ref)
                    )
                    return
                broadcast = out
            try:
                frame = self.serializer.fastlane(broadcast)
            except EncodeError:
                # e.g. a binary broadcast on a V1 socket, which cannot carry it (§2.6).
                self.session.count("undeliverable")
                return
            self.session.enqueue(frame)
        elif state == JOINING:
            # Queued behind the join reply (§4.2 step 6), bounded like the outbound queue.
            if len(self._pending) >= self.session.outbound.max_frames:
                self.session.slow_consumer()
            else:
                self._pending.append(broadcast)

    # -- lifecycle (driven by the session) ------------------------------------------------

    def mark_joined(self, nursery: trio.Nursery) -> None:
        """The join reply is queued: deliver what waited behind it and run `after_join`."""
        self.state = JOINED
        pending, self._pending = self._pending, []
        for broadcast in pending:
            if self.state != JOINED:
                return  # ended by one of them (a removal, a slow consumer): no after_join
            self.deliver(broadcast)
        if self.state == JOINED:
            self._start(nursery, after_join=True)

    def mark_closed(self) -> list[str]:
        """Stop taking anything; returns the topics to unsubscribe from."""
        self.state = CLOSED
        self._pending = []
        self._queue.clear()
        if self._scope is not None:
            self._scope.cancel()
        self._wake_reader()
        return self.topics

    async def enqueue(self, item: Message | Leave) -> None:
        """Queue an event for the handler, waiting while the queue is full."""
        queue, limit = self._queue, self.session.services.settings.actors.channel_mailbox
        while len(queue) >= limit and self.state != CLOSED:
            room = self._room = self._room or trio.Event()
            await room.wait()
        if self.state == CLOSED:
            return  # closed meanwhile: the instance is gone, nothing to do
        queue.append(item)
        if not self._working:
            self._offer_queued()

    def _took_now(self, message: Message) -> bool:
        """Offer an event to the channel's `handle_in_now` (the queue is empty and no task
        runs); while it is being answered the instance counts as working, so later events
        queue behind it as they would behind a task."""
        channel = self.channel
        assert channel is not None
        self._working = True
        self._offering = True
        try:
            taken = channel.handle_in_now(
                message.event, message.payload, message, partial(self._answered, message)
            )
        except Exception as exc:
            self._working = False
            self.session.channel_crashed(self, exc)
            return True
        finally:
            self._offering = False
        if not taken:
            self._working = False
        return taken

    def _answered(self, message: Message, result: HandlerResult | object) -> None:
        """`handle_in_now`'s answer, from whichever task gives it: the reply goes out as
        `handle_in`'s would, then the events that queued meanwhile are offered the same way."""
        if self.state == CLOSED:
            return  # left or closed meanwhile: as for a cancelled task, nothing is sent
        if result is HANDLE_IN_TASK:
            self._queue.insert(0, message)
            self._start(self.session.channel_nursery(), after_join=False)
            return
        try:
            if self.session.apply_result(self, message, result):
                return
        except Exception as exc:
            self.session.channel_crashed(self, exc)
            return
        self._working = False
        if self._queue and not self._offering:
            self._offer_queued()

    def _offer_queued(self) -> None:
        """The instance is free and has queued events: offer them to `handle_in_now` in order
        (a socket that sends faster than its commits return so stays off the task path); the
        first one refused (or a leave) and the rest go to a task."""
        queue = self._queue
        while queue and self.state != CLOSED:
            item = queue[0]
            if not isinstance(item, Message):
                break
            queue.pop(0)
            self._wake_reader()
            if not self._took_now(item):
                queue.insert(0, item)
                break
            if self._working:
                return  # answered later, by `_answered`, which continues from here
        if queue and self.state != CLOSED:
            self._start(self.session.channel_nursery(), after_join=False)

    def _start(self, nursery: trio.Nursery, *, after_join: bool) -> None:
        self._working = True
        self._scope = trio.CancelScope()
        nursery.start_soon(self._work, self._scope, after_join)

    def _wake_reader(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None

    async def _work(self, scope: trio.CancelScope, after_join: bool) -> None:
        """The handler task: `after_join` first if asked, then events until the queue is empty
        (no checkpoint between the last look at the queue and the end, so an event queued after
        it starts a new task); or until left, stopped or crashed."""
        channel = self.channel
        assert channel is not None
        session, queue = self.session, self._queue
        try:
            with scope:
                try:
                    if after_join:
                        await channel.after_join()
                    while queue:
                        item = queue.pop(0)
                        self._wake_reader()
                        if isinstance(item, Leave):
                            session.send(m.reply_ok(item.message))
                            session.finish(self, "left", m.close_message(self.topic, self.join_ref))
                            return
                        result = await channel.handle_in(item.event, item.payload, item)
                        if session.apply_result(self, item, result):
                            return
                except Exception as exc:
                    session.channel_crashed(self, exc)
        finally:
            if self._scope is scope:
                self._working = False
                self._scope = None
