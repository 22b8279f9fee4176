"""SessionActor: one per socket connection (DESIGN §3), the Phoenix socket process of Parley.

It owns what PHOENIX_PROTOCOL.md §4.1 lists per connection: the joined channel instances (topic ->
instance with its join_ref), the routing of inbound frames, the heartbeat deadline, the push rate
limit, and the bounded outbound queue the transport's writer drains.

Shape (read with `transport.py` and `channels.py`):

* The transport's reader hands every data frame to the actor's mailbox with `ref.send` (a
  bounded mailbox, so a client that floods us is slowed by TCP backpressure). `handle_cast`
  decodes and routes frames **one at a time**, so joins are synchronous as in Phoenix: frames
  after a `phx_join` are only routed once the join has been answered.
* The heartbeat timeout is watched for all sockets at once by `SocketHub.watch_liveness`: no
  frame for `socket.heartbeat_timeout_seconds` and the socket closes with 1001 (phoenix.js
  reconnects); the session then stops like any closed one.
* Each joined channel instance handles its events in order in a task of its own (in a nursery
  that wraps the actor's run, see `session_child_spec`): a slow handler (a commit) does not hold
  up heartbeats or other channels, and an exception in a handler ends that instance only, with
  `phx_error` (§4.6). The task exists only while the instance has work (its `after_join`, then
  queued events): it is started by the first event and ends when the queue is empty, so an idle
  socket holds no task and no queue per channel (DESIGN §7's memory budget per connection).
  These tasks belong to this actor (they run only between awaits, on trio's one thread), so
  they update its state directly, like a GenServer's linked helpers. An event the channel can
  answer through callbacks (`Channel.handle_in_now`: a chat send to a running conversation)
  gets no task at all; the instance counts as busy until its reply is out, so order is kept,
  and the events that queued meanwhile are offered the same way, so a socket that pushes
  faster than its commits return stays off the task path.
* A `ChannelInstance` is also the pubsub subscriber for its topic. `deliver` is the fan-out hot
  path: it never blocks and never awaits. It encodes the broadcast through the serializer's
  fastlane (once per serializer for all recipients) and puts the frame in the outbound queue.
  A put that would cross the queue's bounds makes the session a **slow consumer**: its
  instances stop taking broadcasts at once, the queue is discarded, and the socket closes with
  1013 (docs/realtime.md), without the publisher ever waiting.

Close codes are listed in `transport.py` and explained in docs/realtime.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Never

import trio

from parley.actors import Actor, ExitKind, ExitReason, Overflow
from parley.api.socket import message as m
from parley.api.socket.channels import (
    HANDLE_IN_TASK,
    NO_REPLY,
    HandlerReply,
    HandlerResult,
    StopChannel,
    route,
)
from parley.api.socket.close_codes import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_SERVICE_RESTART,
    CLOSE_TRY_AGAIN_LATER,
)
from parley.api.socket.message import Broadcast, Frame, Message, Reply
from parley.api.socket.ratelimit import TokenBucket
from parley.api.socket.serializer import EncodeError, FrameError
from parley.api.socket.transport import InboundFrame

if TYPE_CHECKING:
    from parley.api.socket.auth import SocketPrincipal
    from parley.api.socket.channels import Channel
    from parley.api.socket.hub import SocketHub
    from parley.api.socket.outbound import OutboundQueue
    from parley.api.socket.serializer import V1JsonSerializer, V2JsonSerializer

log = logging.getLogger(__name__)

REASON_RATE_LIMITED: Final = "rate_limited"


# -- the actor's messages ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inbound:
    """A data frame from the transport (cast with `ref.send`: backpressure)."""

    frame: InboundFrame


@dataclass(frozen=True, slots=True)
class Stop:
    """End the session (info): the outbound queue already carries the close code."""

    reason: str


@dataclass(frozen=True, slots=True)
class _Leave:
    """A `phx_leave` queued behind the events the instance has not handled yet."""

    message: Message


class _NurseryHolder:
    """The nursery the channel tasks run in; it wraps the actor's incarnation."""

    nursery: trio.Nursery | None = None


# -- one joined channel -----------------------------------------------------------------------

_JOINING, _JOINED, _CLOSED = 0, 1, 2


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

    def __init__(self, session: SessionActor, topic: str, join_ref: m.Ref) -> None:
        self.session = session
        self.serializer = session.serializer
        self.topic = topic
        self.join_ref = join_ref
        self.state = _JOINING
        self.channel: Channel | None = None
        self.topics: list[str] = []
        self._pending: list[Broadcast] = []
        self._queue: list[Message | _Leave] = []
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

    @property
    def hub(self) -> SocketHub:
        return self.session.hub

    def joined_topics(self) -> frozenset[str]:
        """Topics this socket has joined right now."""
        return self.session.joined_topics()

    def has_joined(self, topic: str) -> bool:
        """Whether this socket has `topic` joined right now (cheap: for handle_out intercepts)."""
        return self.session.has_joined(topic)

    def push(self, event: str, payload: Any) -> None:
        """Send `event` to this client only (F9): the channel's join_ref, ref null."""
        if self.state != _CLOSED:
            self.session.send(m.push(self.join_ref, self.topic, event, payload))

    def broadcast(self, event: str, payload: Any) -> int:
        """`event` to every subscriber of the topic, this one included."""
        return self.hub.pubsub.publish(self.topic, event, payload)

    def broadcast_from(self, event: str, payload: Any) -> int:
        """`event` to every subscriber of the topic but this channel instance (§14 item 25)."""
        return self.hub.pubsub.publish_from(self, self.topic, event, payload)

    def subscribe(self, topic: str) -> None:
        """Also take broadcasts of `topic`; they reach the channel's `handle_out`."""
        if topic not in self.topics:
            self.topics.append(topic)
            self.hub.pubsub.subscribe(topic, self)

    def track(self, key: str, meta: dict[str, Any]) -> str:
        """Presence on this topic for as long as this instance lives; returns the `phx_ref`."""
        return self.hub.presence.track(self.topic, self, key, meta)

    def update_presence(self, key: str, meta: dict[str, Any]) -> str:
        return self.hub.presence.update(self.topic, self, key, meta)

    def presence_state(self) -> dict[str, Any]:
        return self.hub.presence.list(self.topic)

    # -- pubsub (the hot path) -----------------------------------------------------------

    def deliver(self, broadcast: Broadcast) -> None:
        state = self.state
        if state == _JOINED:
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
        elif state == _JOINING:
            # Queued behind the join reply (§4.2 step 6), bounded like the outbound queue.
            if len(self._pending) >= self.session.outbound.max_frames:
                self.session.slow_consumer()
            else:
                self._pending.append(broadcast)

    # -- lifecycle (driven by the session) ------------------------------------------------

    def mark_joined(self, nursery: trio.Nursery) -> None:
        """The join reply is queued: deliver what waited behind it and run `after_join`."""
        self.state = _JOINED
        pending, self._pending = self._pending, []
        for broadcast in pending:
            if self.state != _JOINED:
                return  # ended by one of them (a removal, a slow consumer): no after_join
            self.deliver(broadcast)
        if self.state == _JOINED:
            self._start(nursery, after_join=True)

    def mark_closed(self) -> list[str]:
        """Stop taking anything; returns the topics to unsubscribe from."""
        self.state = _CLOSED
        self._pending = []
        self._queue.clear()
        if self._scope is not None:
            self._scope.cancel()
        self._wake_reader()
        return self.topics

    async def enqueue(self, item: Message | _Leave) -> None:
        """Queue an event for the handler, waiting while the queue is full."""
        queue, limit = self._queue, self.session.hub.settings.actors.channel_mailbox
        while len(queue) >= limit and self.state != _CLOSED:
            room = self._room = self._room or trio.Event()
            await room.wait()
        if self.state == _CLOSED:
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
        if self.state == _CLOSED:
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
        while queue and self.state != _CLOSED:
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
        if queue and self.state != _CLOSED:
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
                        if isinstance(item, _Leave):
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


# -- the session ----------------------------------------------------------------------------


class SessionActor(Actor[Never, Never, Inbound]):
    """The actor behind one socket connection."""

    kind = "session"
    overflow = Overflow.KILL
    """Only infos (`Stop`) can overflow (frames wait for space): a session so far behind that it
    cannot take a stop is killed, which closes its socket with 1011."""

    def __init__(
        self,
        hub: SocketHub,
        principal: SocketPrincipal,
        serializer: V1JsonSerializer | V2JsonSerializer,
        outbound: OutboundQueue,
        nursery: _NurseryHolder,
    ) -> None:
        self.hub = hub
        self.principal = principal
        self.serializer = serializer
        self.outbound = outbound
        self._nursery = nursery
        settings = hub.settings.socket
        self._max_frame = settings.max_frame_bytes
        self._max_channels = settings.max_channels_per_socket
        self._bucket = TokenBucket.for_pushes(settings, clock=trio.current_time)
        self._channels: dict[str, ChannelInstance] = {}
        self._instances: dict[ChannelInstance, None] = {}
        """Every live instance, including ones that are leaving (no longer routable)."""
        self._stop_code: tuple[int, str] | None = None
        self.connected_at = time.time()
        self.counters: dict[str, int] = {}
        self.frames_in = 0

    # -- Actor callbacks ------------------------------------------------------------------

    async def handle_cast(self, message: Inbound) -> None:
        await self._handle_frame(message.frame)

    async def handle_info(self, message: object) -> None:
        if isinstance(message, Stop):
            self.stop()
        else:
            await super().handle_info(message)

    async def terminate(self, reason: ExitReason) -> None:
        for instance in list(self._instances):
            self.finish(instance, "closed", None)
        if reason.kind in (ExitKind.CRASHED, ExitKind.KILLED):
            self.outbound.close(CLOSE_INTERNAL_ERROR, "session crashed")
        elif reason.kind is ExitKind.SHUTDOWN:
            self.outbound.close(CLOSE_SERVICE_RESTART, "server restart")
        else:
            self.outbound.close(CLOSE_GOING_AWAY, "closed")

    def describe(self) -> dict[str, object]:
        return {
            "user_id": str(self.principal.user_id),
            "token_kind": self.principal.token_kind,
            "vsn": self.serializer.vsn,
            "channels": {topic: i.join_ref for topic, i in self._channels.items()},
            "outbound": {
                "frames": len(self.outbound),
                "bytes": self.outbound.bytes,
                "max_frames": self.outbound.max_frames,
                "max_bytes": self.outbound.max_bytes,
                "high_water_frames": self.outbound.high_water_frames,
                "high_water_bytes": self.outbound.high_water_bytes,
                "sent_frames": self.outbound.sent_frames,
                "sent_bytes": self.outbound.sent_bytes,
            },
            "frames_in": self.frames_in,
            "counters": dict(self.counters),
            "connected_at": self.connected_at,
        }

    # -- what instances, the hub and channels call -----------------------------------------

    def joined_topics(self) -> frozenset[str]:
        return frozenset(self._channels)

    def has_joined(self, topic: str) -> bool:
        return topic in self._channels

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
        self.hub.count(name)

    def send(self, item: Message | Reply) -> None:
        """Encode one push or reply for this connection and queue it."""
        try:
            frame = self.serializer.encode(item)
        except EncodeError as exc:
            log.warning("session %s: cannot encode %s: %s", self.ref.id, type(item).__name__, exc)
            self.count("undeliverable")
            return
        self.enqueue(frame)

    def enqueue(self, frame: Frame) -> None:
        if not self.outbound.put(frame):
            self.slow_consumer()

    def slow_consumer(self) -> None:
        """The outbound queue is full: stop taking broadcasts now and close with 1013."""
        if self.outbound.closing:
            return
        self.count("slow_consumers")
        log.info(
            "session %s (user %s): slow consumer, closing", self.ref.id, self.principal.user_id
        )
        for instance in self._instances:
            instance.state = _CLOSED  # deliveries become no-ops until terminate unsubscribes
        self.close(CLOSE_TRY_AGAIN_LATER, "slow consumer", discard=True)

    def close(self, code: int, reason: str, *, discard: bool = False) -> None:
        """Close the socket with `code` (after what is queued, unless `discard`) and stop."""
        self.outbound.close(code, reason, discard=discard)
        self._request_stop(reason)

    def _request_stop(self, reason: str) -> None:
        try:
            self.ref.info(Stop(reason))
        except Exception:  # the actor is already gone: nothing left to stop
            log.debug("session %s: stop after exit", self.ref.id)

    def finish(self, instance: ChannelInstance, reason: str, frame: Message | None) -> None:
        """End `instance` for good (idempotent): unsubscribe, presence leaves, terminate, and
        send `frame` (its `phx_close` / `phx_error`) unless None."""
        if instance not in self._instances:
            return
        del self._instances[instance]
        if self._channels.get(instance.topic) is instance:
            del self._channels[instance.topic]
        pubsub = self.hub.pubsub
        for topic in instance.mark_closed():
            pubsub.unsubscribe(topic, instance)
        self.hub.presence.untrack_all(instance)
        if instance.channel is not None:
            try:
                instance.channel.terminate(reason)
            except Exception:
                log.exception("channel %s: terminate(%s) failed", instance.topic, reason)
        if frame is not None:
            self.send(frame)

    def channel_crashed(self, instance: ChannelInstance, error: Exception) -> None:
        """A handler raised: `phx_error` for that instance only; the socket stays (§4.6)."""
        log.warning(
            "session %s: channel %s crashed: %r",
            self.ref.id,
            instance.topic,
            error,
            exc_info=error,
        )
        self.count("channel_crashes")
        self.finish(instance, "crashed", m.error_message(instance.topic, instance.join_ref))

    def apply_result(self, instance: ChannelInstance, message: Message, result: object) -> bool:
        """Send what a `handle_in` result asks for; True when the channel stops."""
        if result is NO_REPLY:
            return False
        if isinstance(result, HandlerReply):
            self.send(
                Reply(
                    message.join_ref,
                    message.ref,
                    instance.topic,
                    result.status,
                    {} if result.response is None else result.response,
                )
            )
            return False
        if isinstance(result, StopChannel):
            if result.reply is not None:
                response = {} if result.reply.response is None else result.reply.response
                self.send(
                    Reply(
                        message.join_ref, message.ref, instance.topic, result.reply.status, response
                    )
                )
            self.finish(instance, result.reason, m.close_message(instance.topic, instance.join_ref))
            return True
        raise TypeError(
            f"handle_in of {instance.topic} returned {result!r}; expected a reply (ok/error/"
            "reply), NO_REPLY or Stop"
        )

    # -- inbound frames ---------------------------------------------------------------------

    async def _handle_frame(self, frame: InboundFrame) -> None:
        if self.outbound.closing:
            return
        self.frames_in += 1
        if frame.size > self._max_frame:
            self.count("oversize_frames")
            self.close(CLOSE_MESSAGE_TOO_BIG, "frame too large", discard=True)
            return
        try:
            if isinstance(frame.data, bytes):
                message = self.serializer.decode_binary(frame.data)
            else:
                message = self.serializer.decode_text(frame.data)
        except FrameError as exc:
            self.count("bad_frames")
            log.info("session %s: bad frame (%s); closing", self.ref.id, exc.reason)
            self.close(exc.close_code, exc.reason)
            return
        if message.is_heartbeat:
            self.send(m.heartbeat_reply(message.ref))
            return
        if message.event != m.PHX_LEAVE and not self._bucket.try_acquire():
            self.count("rate_limited")
            self.send(m.reply_error(message, {"reason": REASON_RATE_LIMITED}))
            return
        if message.event == m.PHX_JOIN:
            await self._join(message)
            return
        instance = self._channels.get(message.topic)
        if message.event == m.PHX_LEAVE:
            await self._leave(message, instance)
            return
        if instance is None:
            self.send(m.reply_unmatched_topic(message))
            return
        if message.join_ref is not None and message.join_ref != instance.join_ref:
            self.count("stale_join_ref")
            return  # §4.3: stale join_ref, dropped silently
        await instance.enqueue(message)

    def channel_nursery(self) -> trio.Nursery:
        """Where this session's channel tasks run."""
        nursery = self._nursery.nursery
        assert nursery is not None
        return nursery

    async def _join(self, message: Message) -> None:
        topic = message.topic
        old = self._channels.get(topic)
        if old is not None:
            # Duplicate join (§4.7): the old instance closes with *its* join_ref.
            self.finish(old, "duplicate join", m.close_message(topic, old.join_ref))
        channel_class = route(topic, self.hub)
        if channel_class is None:
            self.send(m.reply_unmatched_topic(message))
            return
        if len(self._channels) >= self._max_channels:
            self.send(m.reply_too_many_channels(message))
            return
        instance = ChannelInstance(self, topic, m.effective_join_ref(message))
        instance.channel = channel = channel_class(instance, topic)
        self._instances[instance] = None
        instance.subscribe(topic)  # broadcasts from now on wait behind the reply (§4.2)
        try:
            result = await channel.join(message.payload)
        except Exception:
            log.exception("session %s: join of %s crashed", self.ref.id, topic)
            self.count("join_crashes")
            self.finish(instance, "join crashed", None)
            self.send(m.reply_join_crashed(message))
            return
        if not isinstance(result, HandlerReply) or result.status != "ok":
            self.finish(instance, "join refused", None)
            if isinstance(result, HandlerReply):
                self.send(
                    Reply(
                        message.join_ref,
                        message.ref,
                        topic,
                        result.status,
                        {} if result.response is None else result.response,
                    )
                )
            else:
                log.error("join of %s returned %r, not a reply", topic, result)
                self.send(m.reply_join_crashed(message))
            return
        if instance not in self._instances or self.outbound.closing:
            return  # closed while joining
        self._channels[topic] = instance
        self.count("joins")
        self.send(m.reply_ok(message, result.response))
        instance.mark_joined(self.channel_nursery())

    async def _leave(self, message: Message, instance: ChannelInstance | None) -> None:
        if instance is None:
            self.send(m.reply_ok(message))  # §4.4: a leave for a topic not joined is ok {}
            return
        if message.join_ref is not None and message.join_ref != instance.join_ref:
            return  # stale: the client races a close we already sent
        # Not routable any more; the instance answers after the events queued before the leave.
        del self._channels[instance.topic]
        await instance.enqueue(_Leave(message))


# -- running a session ------------------------------------------------------------------------


def session_child_spec(
    hub: SocketHub,
    principal: SocketPrincipal,
    serializer: V1JsonSerializer | V2JsonSerializer,
    outbound: OutboundQueue,
    *,
    mailbox: int,
) -> tuple[Any, Any]:
    """(ref, ChildSpec) of a new session: the actor's own spec, wrapped in the nursery its
    channel tasks run in. Temporary: a session is never restarted, the client reconnects."""
    from parley.supervision import ChildSpec, Restart

    holder = _NurseryHolder()
    settings = hub.settings
    factory: Callable[[], SessionActor] = lambda: SessionActor(  # noqa: E731
        hub, principal, serializer, outbound, holder
    )
    child = hub.system.child(
        SessionActor,
        factory,
        capacity=mailbox,
        key=str(principal.user_id),
        restart=Restart.TEMPORARY,
        shutdown_timeout=settings.supervision.child_shutdown_seconds,
    )
    run_actor = child.spec.start

    async def start(*, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        # The actor runs in this task, the channel handlers in the nursery around it: when the
        # actor ends, so do they.
        async with trio.open_nursery() as nursery:
            holder.nursery = nursery
            try:
                await run_actor(task_status=task_status)
            finally:
                nursery.cancel_scope.cancel()

    spec = ChildSpec(
        name=child.spec.name,
        start=start,
        restart=Restart.TEMPORARY,
        shutdown_timeout=child.spec.shutdown_timeout,
        describe=child.spec.describe,
        on_terminated=_on_terminated(child.spec.on_terminated, outbound),
    )
    return child.ref, spec


def _on_terminated(
    retire: Callable[[], None] | None, outbound: OutboundQueue
) -> Callable[[], None]:
    def terminated() -> None:
        # Whatever ended the slot (a failed init included), the transport must close the socket.
        outbound.close(CLOSE_INTERNAL_ERROR, "session ended")
        if retire is not None:
            retire()

    return terminated
