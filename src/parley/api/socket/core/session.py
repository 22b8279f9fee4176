"""SessionActor: one per socket connection (DESIGN §3), Parley's Phoenix socket process.

It owns what PHOENIX_PROTOCOL.md §4.1 lists per connection: the joined channel instances (topic ->
instance with its join_ref), the routing of inbound frames, the heartbeat deadline, the push rate
limit, and the bounded outbound queue the transport's writer drains.

Shape (read with `transport`, `instance` and `channel` beside it):

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
  answer through callbacks (`Channel.handle_push`: a chat send to a running conversation)
  gets no task at all; the instance counts as busy until its reply is out, so order is kept,
  and the events that queued meanwhile are offered the same way, so a socket that pushes
  faster than its commits return stays off the task path.
* A `ChannelInstance` is also the pubsub subscriber for its topic. `deliver` is the fan-out hot
  path: it never blocks and never awaits. It encodes the broadcast through the serializer's
  fastlane (once per serializer for all recipients) and puts the frame in the outbound queue.
  A put that would cross the queue's bounds makes the session a **slow consumer**: its
  instances stop taking broadcasts at once, the queue is discarded, and the socket closes with
  1013 (docs/realtime.md), without the publisher ever waiting.

Close codes are in `close_codes` and explained in docs/realtime.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Never

import trio

from parley.actors import Actor, ActorRef, ExitKind, ExitReason, Overflow
from parley.api.socket.core import message as m
from parley.api.socket.core.channel import NO_REPLY, UNAUTHORIZED, HandlerReply, StopChannel
from parley.api.socket.core.close_codes import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_SERVICE_RESTART,
    CLOSE_TRY_AGAIN_LATER,
)
from parley.api.socket.core.instance import CLOSED, ChannelInstance, Leave
from parley.api.socket.core.message import Frame, Message, Reply
from parley.api.socket.core.ratelimit import TokenBucket
from parley.api.socket.core.serializer import EncodeError, FrameError
from parley.api.socket.core.transport import InboundFrame
from parley.supervision import ChildSpec, Restart

if TYPE_CHECKING:
    from parley.api.socket.core.outbound import OutboundQueue
    from parley.api.socket.core.principal import SocketPrincipal
    from parley.api.socket.core.serializer import Serializer
    from parley.api.socket.core.services import SocketServices

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


class _NurseryHolder:
    """The nursery the channel tasks run in; it wraps the actor's incarnation."""

    __slots__ = ("nursery",)

    def __init__(self) -> None:
        self.nursery: trio.Nursery | None = None


# -- the session ----------------------------------------------------------------------------


class SessionActor(Actor[Never, Never, Inbound]):
    """The actor behind one socket connection."""

    kind = "session"
    overflow = Overflow.KILL
    """Only infos (`Stop`) can overflow (frames wait for space): a session so far behind that it
    cannot take a stop is killed, which closes its socket with 1011."""

    def __init__(
        self,
        services: SocketServices,
        principal: SocketPrincipal,
        serializer: Serializer,
        outbound: OutboundQueue,
        nursery: _NurseryHolder,
    ) -> None:
        self.services = services
        self.principal = principal
        self.serializer = serializer
        self.outbound = outbound
        self._nursery = nursery
        settings = services.settings.socket
        self._max_frame = settings.max_frame_bytes
        self._max_channels = settings.max_channels_per_socket
        self._bucket = TokenBucket.for_pushes(settings, clock=trio.current_time)
        self._channels: dict[str, ChannelInstance] = {}
        self._instances: dict[ChannelInstance, None] = {}
        """Every live instance, including ones that are leaving (no longer routable)."""
        self._stop_code: tuple[int, str] | None = None
        self.connected_at = time.time()
        self.counters: dict[str, int] | None = None
        """Made at the first count (an idle socket has none)."""
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
            "rate_limit": {
                "tokens": round(self._bucket.tokens, 2),
                "burst": self._bucket.burst,
                "per_second": self._bucket.rate,
            },
            "counters": dict(self.counters or {}),
            "connected_at": self.connected_at,
        }

    # -- what instances and channels call -----------------------------------------

    def joined_topics(self) -> frozenset[str]:
        return frozenset(self._channels)

    def has_joined(self, topic: str) -> bool:
        return topic in self._channels

    def count(self, name: str) -> None:
        counters = self.counters
        if counters is None:
            counters = self.counters = {}
        counters[name] = counters.get(name, 0) + 1
        self.services.count(name)

    def send(self, item: Message | Reply) -> None:
        """Encode one push or reply for this connection and queue it."""
        try:
            frame = self.serializer.encode(item)
        except EncodeError as exc:
            log.warning("session %s: cannot encode %s: %s", self.ref.id, type(item).__name__, exc)
            self.count("undeliverable")
            return
        if frame is not None:  # None: the protocol has no frame for it
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
            instance.state = CLOSED  # deliveries become no-ops until terminate unsubscribes
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
        pubsub = self.services.pubsub
        for topic in instance.mark_closed():
            pubsub.unsubscribe(topic, instance)
        self.services.presence.untrack_all(instance)
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
        if self.principal.confines(topic):
            self.send(m.reply_error(message, {"reason": UNAUTHORIZED}))
            return
        old = self._channels.get(topic)
        if old is not None:
            # Duplicate join (§4.7): the old instance closes with *its* join_ref.
            self.finish(old, "duplicate join", m.close_message(topic, old.join_ref))
        make_channel = self.services.router.route(topic)
        if make_channel is None:
            self.send(m.reply_unmatched_topic(message))
            return
        if len(self._channels) >= self._max_channels:
            self.send(m.reply_too_many_channels(message))
            return
        instance = ChannelInstance(self, topic, m.effective_join_ref(message))
        instance.channel = channel = make_channel(instance, topic)
        if channel.presence:
            instance.follow_presence()
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
        instance.mark_joined()

    async def _leave(self, message: Message, instance: ChannelInstance | None) -> None:
        if instance is None:
            self.send(m.reply_ok(message))  # §4.4: a leave for a topic not joined is ok {}
            return
        if message.join_ref is not None and message.join_ref != instance.join_ref:
            return  # stale: the client races a close we already sent
        # Not routable any more; the instance answers after the events queued before the leave.
        del self._channels[instance.topic]
        await instance.enqueue(Leave(message))


# -- running a session ------------------------------------------------------------------------


SessionRef = ActorRef[Never, Never, Inbound]


def session_child_spec(
    services: SocketServices,
    principal: SocketPrincipal,
    serializer: Serializer,
    outbound: OutboundQueue,
) -> tuple[SessionRef, ChildSpec]:
    """(ref, ChildSpec) of a new session: the actor's own spec, wrapped in the nursery its
    channel tasks run in. Temporary: a session is never restarted, the client reconnects."""
    launcher = _SessionLauncher(services, principal, serializer, outbound)
    settings = services.settings
    child = services.system.child(
        SessionActor,
        launcher.make,
        capacity=settings.actors.session_mailbox,
        key=str(principal.user_id),
        restart=Restart.TEMPORARY,
        shutdown_timeout=settings.supervision.child_shutdown_seconds,
    )
    launcher.run_actor = child.spec.start
    launcher.retire = child.spec.on_terminated
    spec = ChildSpec(
        name=child.spec.name,
        start=launcher.start,
        restart=Restart.TEMPORARY,
        shutdown_timeout=child.spec.shutdown_timeout,
        describe=child.spec.describe,
        on_terminated=launcher.terminated,
    )
    return child.ref, spec


class _SessionLauncher(_NurseryHolder):
    """What a session's child spec runs: the actor, in a nursery for its channel tasks. One
    small object with methods rather than three closures (their cells and function objects
    cost every idle socket ~0.7 KB, tracemalloc)."""

    __slots__ = ("outbound", "principal", "retire", "run_actor", "serializer", "services")

    def __init__(
        self,
        services: SocketServices,
        principal: SocketPrincipal,
        serializer: Serializer,
        outbound: OutboundQueue,
    ) -> None:
        super().__init__()
        self.services = services
        self.principal = principal
        self.serializer = serializer
        self.outbound = outbound
        self.run_actor: Callable[..., Awaitable[object]] | None = None
        self.retire: Callable[[], None] | None = None

    def make(self) -> SessionActor:
        return SessionActor(self.services, self.principal, self.serializer, self.outbound, self)

    async def start(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        # The actor runs in this task, the channel handlers in the nursery around it: when the
        # actor ends, so do they.
        run_actor = self.run_actor
        assert run_actor is not None
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            try:
                await run_actor(task_status=task_status)
            finally:
                nursery.cancel_scope.cancel()

    def terminated(self) -> None:
        # Whatever ended the slot (a failed init included), the transport must close the socket.
        self.outbound.close(CLOSE_INTERNAL_ERROR, "session ended")
        if self.retire is not None:
            self.retire()
