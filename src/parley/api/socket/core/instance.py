"""A `ChannelInstance`: one join of one topic on one socket (the channel's `socket`).

It is the pubsub subscriber for its topic and runs the channel's handlers in order, in a task of
its own only while it has events to await (see `parley.api.socket.core.session` for the shape of
a session, and docs/realtime.md "Pushes without a task" for `Channel.handle_push`). It reaches its
session only through `InstanceOwner`, the few things it needs of it.

Presence snapshot and diffs: an instance whose channel shows presence (`Channel.presence`)
subscribes before its join is answered, as every instance does, but drops its topic's
`presence_diff`s until the channel takes its snapshot (`presence_state`, from `join` or
`after_join`): everything broadcast before is in the snapshot, everything after is news to it
(`parley.actors.realtime.presence`, "Snapshots and diffs agree"). Without that, a diff broadcast
while the join was being decided (or still pending in the tracker's batch) reached the client
after a snapshot that already held it: a second `member_added` for a listed user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from parley.actors.realtime.presence import PresenceSnapshot
from parley.api.socket.core import message as m
from parley.api.socket.core.channel import Awaiting, Channel, HandlerResult, StopChannel
from parley.api.socket.core.message import Broadcast, Frame, Message, Reply
from parley.api.socket.core.serializer import EncodeError

if TYPE_CHECKING:
    from parley.api.socket.core.outbound import OutboundQueue
    from parley.api.socket.core.principal import SocketPrincipal
    from parley.api.socket.core.serializer import Serializer
    from parley.api.socket.core.services import SocketServices


Handler = Callable[[], Awaitable[object]]
"""What the channel's task awaits: `after_join`, or an `Awaiting` answer's handler."""


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

AWAITING_SNAPSHOT: Final = PresenceSnapshot({})
"""`_presence` of an instance whose channel has not taken its presence snapshot yet."""


class ChannelInstance:
    """One join of one topic on one socket: the pubsub subscriber and the handler's task.

    Channels talk to the socket only through this object (push, broadcast, presence), so a
    handler never touches the session's internals.
    """

    __slots__ = (
        "_in_worker",
        "_next",
        "_offering",
        "_pending",
        "_presence",
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
        self._pending: list[Broadcast] | None = None
        """Broadcasts that arrived while joining (made at the first one)."""
        self._queue: list[Message | Leave] | None = None
        """Events waiting for the handler, at most `actors.channel_mailbox` (a short list, made
        at the first event: an idle channel holds none; an empty deque would cost a 0.5 KB
        block); a full queue makes the session's reader wait (backpressure to the client),
        never drops."""
        self._room: trio.Event | None = None
        """Set when the queue has room again, for a reader waiting on a full queue."""
        self._working = False
        self._offering = False
        """True while `handle_push` runs: an answer given inside it leaves the next queued
        event to `_offer_queued`'s loop instead of recursing into it."""
        self._in_worker = False
        """True while the channel's task offers queued events: an `Awaiting` answered then
        runs next in that task (`_next`) instead of starting another."""
        self._next: tuple[Message, Handler] | None = None
        self._scope: trio.CancelScope | None = None
        """The running handler task's scope (None when there is no task)."""
        self._presence: PresenceSnapshot | None = None
        """While not None, the topic's presence diffs are filtered (module docstring):
        `AWAITING_SNAPSHOT` drops them; a snapshot taken with changes pending trims the batch
        that announces them, then this is None again."""

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

    def follow_presence(self) -> None:
        """The channel will show a presence snapshot: drop the topic's diffs until it does."""
        self._presence = AWAITING_SNAPSHOT

    def presence_state(self) -> dict[str, Any]:
        """The presence snapshot to show this client; the topic's diffs follow on from it."""
        snapshot = self.session.services.presence.snapshot(self.topic)
        if self._presence is not None:
            self._presence = snapshot if snapshot.pending is not None else None
        return snapshot.state

    # -- pubsub (the hot path) -----------------------------------------------------------

    def deliver(self, broadcast: Broadcast) -> None:
        presence = self._presence
        if (
            presence is not None
            and broadcast.event == m.PRESENCE_DIFF
            and broadcast.topic == self.topic
        ):
            if presence is AWAITING_SNAPSHOT:
                return  # the snapshot to come holds it
            trimmed = presence.trimmed(broadcast)
            if trimmed is not broadcast:
                self._presence = None  # the batch the snapshot ran ahead of: in step now
                if trimmed is None:
                    return
                broadcast = trimmed
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
                if isinstance(out, tuple):
                    for each in out:  # one broadcast made several (each encoded once, cached)
                        self._write(each)
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
            self._write(broadcast)
        elif state == JOINING:
            # Queued behind the join reply (§4.2 step 6), bounded like the outbound queue.
            pending = self._pending
            if pending is None:
                pending = self._pending = []
            if len(pending) >= self.session.outbound.max_frames:
                self.session.slow_consumer()
            else:
                pending.append(broadcast)

    def _write(self, broadcast: Broadcast) -> None:
        try:
            frame = self.serializer.fastlane(broadcast)
        except EncodeError:
            # e.g. a binary broadcast on a V1 socket, which cannot carry it (§2.6).
            self.session.count("undeliverable")
            return
        if frame is not None:  # None: this protocol has no frame for the event
            self.session.enqueue(frame)

    # -- lifecycle (driven by the session) ------------------------------------------------

    def mark_joined(self) -> None:
        """The join reply is queued: deliver what waited behind it and run `after_join`."""
        self.state = JOINED
        channel = self.channel
        if self._presence is AWAITING_SNAPSHOT and channel is not None and not channel.presence:
            self._presence = None  # decided in `join` to show none
        pending, self._pending = self._pending, None
        for broadcast in pending or ():
            if self.state != JOINED:
                return  # ended by one of them (a removal, a slow consumer): no after_join
            self.deliver(broadcast)
        if self.state == JOINED:
            channel = self.channel
            assert channel is not None
            self._start(None, channel.after_join)

    def mark_closed(self) -> list[str]:
        """Stop taking anything; returns the topics to unsubscribe from."""
        self.state = CLOSED
        self._pending = None
        self._queue = None
        if self._scope is not None:
            self._scope.cancel()
        self._wake_reader()
        return self.topics

    async def enqueue(self, item: Message | Leave) -> None:
        """Queue an event for the channel, waiting while the queue is full."""
        limit = self.session.services.settings.actors.channel_mailbox
        while self._queue is not None and len(self._queue) >= limit and self.state != CLOSED:
            room = self._room = self._room or trio.Event()
            await room.wait()
        if self.state == CLOSED:
            return  # closed meanwhile: the instance is gone, nothing to do
        queue = self._queue
        if queue is None:
            queue = self._queue = []
        queue.append(item)
        if not self._working:
            self._offer_queued()

    # -- handing events to the channel, in order ------------------------------------------

    def _offer_queued(self) -> None:
        """The instance is free: hand the queued events to the channel in order, until one is
        answered later (from a callback, or in a task for `Awaiting`) or none is left. A socket
        that sends faster than its commits return so takes no task at all."""
        queue = self._queue
        while queue and not self._working and self.state != CLOSED:
            item = queue.pop(0)
            self._wake_reader()
            if isinstance(item, Leave):
                self.session.send(m.reply_ok(item.message))
                self.session.finish(self, "left", m.close_message(self.topic, self.join_ref))
                return
            self._push(item)

    def _push(self, message: Message) -> None:
        """`handle_push` one event; the instance counts as working until it is answered."""
        channel = self.channel
        assert channel is not None
        self._working = True
        self._offering = True
        try:
            channel.handle_push(
                message.event, message.payload, message, partial(self._answered, message)
            )
        except Exception as exc:
            self._working = False
            self.session.channel_crashed(self, exc)
        finally:
            self._offering = False

    def _answered(self, message: Message, result: HandlerResult | Awaiting) -> None:
        """A push's answer, from whichever task gives it: the reply goes out, then the events
        that queued meanwhile are offered the same way."""
        if self.state == CLOSED:
            return  # left or closed meanwhile: as for a cancelled task, nothing is sent
        if isinstance(result, Awaiting):
            if self._in_worker:
                self._next = (message, result.handler)  # the running task takes it next
            else:
                self._start(message, result.handler)
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

    def _start(self, message: Message | None, handler: Handler) -> None:
        self._working = True
        self._scope = trio.CancelScope()
        self.session.channel_nursery().start_soon(self._work, self._scope, (message, handler))

    def _wake_reader(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None

    async def _work(self, scope: trio.CancelScope, job: tuple[Message | None, Handler]) -> None:
        """The channel's task: `after_join` (message None) or an `Awaiting` answer, then the
        events queued meanwhile, each `Awaiting` among them in this same task, until one is
        answered by a callback or none is left; or until left, stopped or crashed."""
        session = self.session
        try:
            with scope:
                try:
                    next_job: tuple[Message | None, Handler] | None = job
                    while next_job is not None:
                        message, handler = next_job
                        result = await handler()
                        if message is not None and session.apply_result(self, message, result):
                            return
                        self._working = False
                        self._in_worker = True
                        try:
                            self._offer_queued()
                        finally:
                            self._in_worker = False
                        next_job, self._next = self._next, None
                except Exception as exc:
                    session.channel_crashed(self, exc)
        finally:
            if self._scope is scope:
                self._scope = None
