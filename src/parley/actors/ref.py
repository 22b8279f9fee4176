"""`ActorRef`: the stable handle to an actor, and its statistics.

A ref is created once per actor slot and stays valid across restarts: it owns the mailbox, the
counters and a handle on the current incarnation. The runtime (`runtime.py`) drives it through the
underscore methods below; everyone else uses the public ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from parley.actors.errors import (
    ActorError,
    ActorUnavailable,
    CallTimeout,
    MailboxFull,
)
from parley.actors.mailbox import (
    Call,
    Cast,
    Envelope,
    Failed,
    Info,
    Mailbox,
    Overflow,
    Reply,
    ReplySlot,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from parley.actors.actor import Actor
    from parley.actors.runtime import ActorDirectory

CallT = TypeVar("CallT")
ReplyT = TypeVar("ReplyT")
CastT = TypeVar("CastT")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActorStats:
    """A snapshot of one actor, for `/debug/actors` and `/metrics`."""

    id: str
    """Unique within the actor system and stable across restarts (`<kind>-<n>`)."""
    kind: str
    key: str | None
    running: bool
    """An incarnation is up (False while restarting, or after the slot ended)."""
    mailbox_depth: int
    mailbox_capacity: int
    processed: int
    """Messages handled to completion, over all incarnations."""
    dropped: int
    """Casts that found the mailbox full, whatever the overflow policy did about it."""
    restarts: int
    started_at: datetime | None
    """Wall-clock time (UTC) the current incarnation started."""
    last_error: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "key": self.key,
            "running": self.running,
            "mailbox_depth": self.mailbox_depth,
            "mailbox_capacity": self.mailbox_capacity,
            "processed": self.processed,
            "dropped": self.dropped,
            "restarts": self.restarts,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "last_error": self.last_error,
        }


class _Running:
    """The current incarnation, as far as its ref needs to know: what `kill()` cancels."""

    __slots__ = ("actor", "kill_reason", "scope")

    def __init__(self, actor: Actor[Any, Any, Any]) -> None:
        self.actor = actor
        self.scope = trio.CancelScope()
        self.kill_reason: str | None = None


class ActorRef(Generic[CallT, ReplyT, CastT]):
    """How other tasks talk to an actor: call, cast, info, send, kill, statistics.

    Made by `ActorSystem.create_ref` (or `ActorSystem.child`). Cheap to pass around; holding one
    never keeps anything alive. Once the actor's slot has ended (`alive` is False) every operation
    raises `ActorUnavailable`.
    """

    def __init__(
        self,
        *,
        actor_id: str,
        kind: str,
        key: str | None,
        capacity: int,
        overflow: Overflow,
        call_timeout: float,
        directory: ActorDirectory,
    ) -> None:
        self.id = actor_id
        self.kind = kind
        self.key = key
        self.overflow = overflow
        self._call_timeout = call_timeout
        self._directory = directory
        self._mailbox: Mailbox[Envelope[CallT, ReplyT, CastT]] = Mailbox(capacity)
        self._running: _Running | None = None
        self._incarnations = 0
        self._processed = 0
        self._dropped = 0
        self._started_at: datetime | None = None
        self._last_error: str | None = None
        self._monitors: list[tuple[ActorRef[Any, Any, Any], object]] = []
        directory.add(self)

    def __repr__(self) -> str:
        return f"<ActorRef {self.id}>"

    @property
    def alive(self) -> bool:
        """The actor's slot exists: messages are accepted (and handled, now or after a restart)."""
        return not self._mailbox.closed

    @property
    def running(self) -> bool:
        """An incarnation is up right now."""
        return self._running is not None

    async def call(
        self,
        message: CallT,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - every call needs a default deadline
    ) -> ReplyT:
        """Send `message` to `handle_call` and wait for its reply.

        Waits for mailbox space (backpressure) and then for the reply, both within `timeout`
        seconds (default `actors.call_timeout_seconds`; `math.inf` waits forever).

        Raises:
            CallTimeout: no reply in time. The message may still be handled later.
            ActorCrashed: the actor crashed handling it (`__cause__` is its error); its
                supervisor restarts it.
            ActorUnavailable: the actor is gone, or went down (killed, stopped) before replying.
        """
        limit = self._call_timeout if timeout is None else timeout
        # Not `ReplySlot[ReplyT]()`: calling a subscripted generic costs ~1 % of the server on
        # the chat path (py-spy, W2); the annotation says the same.
        reply_to: ReplySlot[ReplyT] = ReplySlot()
        with trio.move_on_after(limit) as deadline:
            try:
                await self._mailbox.put(Call(message, reply_to))
            except trio.ClosedResourceError:
                raise ActorUnavailable(self.id, "not running") from None
            try:
                reply = await reply_to.wait()
            except trio.EndOfChannel:
                raise ActorUnavailable(
                    self.id, f"went down before replying to {type(message).__name__}"
                ) from None
        if deadline.cancelled_caught:
            raise CallTimeout(self.id, type(message).__name__, limit)
        if isinstance(reply, Failed):
            raise reply.error
        return reply.value

    def call_soon(self, message: CallT, on_reply: Callable[[Reply[ReplyT] | None], None]) -> bool:
        """Queue a call without waiting for anything: False (nothing queued) when the mailbox is
        full or closed.

        Once queued, `on_reply` is called exactly once: with the reply (`Ok`, or `Failed` if the
        actor crashed handling it), or with None if the actor went down before answering. It is
        called from the task that answers, so it must not block. Unlike `call` there is no
        timeout: this is for callers that cannot hold a task open per call (a socket push, see
        `Chat.send_soon`), and whose own client keeps the deadline.
        """
        try:
            self._mailbox.put_nowait(Call(message, ReplySlot(on_reply)))
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    def cast(self, message: CastT) -> bool:
        """Queue `message` for `handle_cast`. Never blocks.

        Returns True if queued, False if the mailbox was full and the kind's overflow policy is
        `DROP` or `KILL` (the overflow is counted either way).

        Raises:
            MailboxFull: the mailbox is full and the policy is `RAISE`.
            ActorUnavailable: the actor is gone.
        """
        return self._deliver(Cast(message))

    def info(self, message: object) -> bool:
        """Like `cast`, but delivered to `handle_info` (for timers, monitors, out-of-band news)."""
        return self._deliver(Info(message))

    async def send(self, message: CastT) -> None:
        """Queue `message` for `handle_cast`, waiting for space: backpressure inside the tree.

        Raises:
            ActorUnavailable: the actor is gone (or its slot ended while we waited).
        """
        try:
            await self._mailbox.put(Cast(message))
        except trio.ClosedResourceError:
            raise ActorUnavailable(self.id, "not running") from None

    def kill(self, reason: str) -> None:
        """Crash the actor from outside, as Erlang's `exit(Pid, kill)` does.

        Its current handler is cancelled and the incarnation exits with `ActorKilled`, so its
        supervisor restarts it per its restart type (queued messages are kept). A no-op while it is
        already down and waiting to be restarted.

        Raises:
            ActorUnavailable: the actor is gone.
        """
        if not self.alive:
            raise ActorUnavailable(self.id, "not running")
        running = self._running
        if running is None:
            return
        if running.kill_reason is None:
            running.kill_reason = reason
        running.scope.cancel()

    def monitor(self, watcher: ActorRef[Any, Any, Any], message: object) -> None:
        """Have `message` delivered to `watcher.info` once this actor's slot ends (Erlang's DOWN).

        Delivered at once if it has ended already. Delivery uses `info`, so it obeys the watcher's
        overflow policy; a lost notice is logged.
        """
        if self.alive:
            self._monitors.append((watcher, message))
        else:
            self._notify(watcher, message)

    def statistics(self) -> ActorStats:
        return ActorStats(
            id=self.id,
            kind=self.kind,
            key=self.key,
            running=self._running is not None,
            mailbox_depth=self._mailbox.depth,
            mailbox_capacity=self._mailbox.capacity,
            processed=self._processed,
            dropped=self._dropped,
            restarts=max(self._incarnations - 1, 0),
            started_at=self._started_at,
            last_error=self._last_error,
        )

    def describe(self) -> dict[str, object]:
        """Statistics plus the running incarnation's own `describe()`, as JSON-able data."""
        description = self.statistics().as_dict()
        running = self._running
        if running is not None:
            try:
                description["state"] = running.actor.describe()
            except Exception as exc:
                # An operator's look at one actor must not fail because its describe() is broken.
                description["state"] = {"describe_error": repr(exc)}
        return description

    # -- driven by the runtime ----------------------------------------------------------------

    def _deliver(self, envelope: Envelope[CallT, ReplyT, CastT]) -> bool:
        try:
            self._mailbox.put_nowait(envelope)
        except trio.WouldBlock:
            return self._overflowed(envelope)
        except trio.ClosedResourceError:
            raise ActorUnavailable(self.id, "not running") from None
        return True

    def _overflowed(self, envelope: Envelope[CallT, ReplyT, CastT]) -> bool:
        self._dropped += 1
        what = type(envelope.message).__name__
        capacity = self._mailbox.capacity
        if self.overflow is Overflow.RAISE:
            raise MailboxFull(self.id, f"mailbox full ({capacity}); {what} not delivered")
        if self.overflow is Overflow.KILL:
            logger.warning("%s: mailbox full (%d) on %s; killing it", self.id, capacity, what)
            self.kill(f"mailbox overflow ({capacity} messages)")
        return False

    def _open(self) -> None:
        """Make sure the slot can take messages: a slot started again after it ended reopens."""
        if self._mailbox.closed:
            self._mailbox.reopen()
            self._directory.add(self)

    def _begin(self, actor: Actor[Any, Any, Any]) -> _Running:
        running = self._running = _Running(actor)
        self._incarnations += 1
        self._started_at = datetime.now(UTC)
        return running

    def _end(self, running: _Running, error: Exception | None) -> None:
        if self._running is running:
            self._running = None
        if error is not None:
            self._last_error = repr(error)

    def _count_processed(self) -> None:
        self._processed += 1

    def _retire(self) -> None:
        """The slot ended for good: fail queued calls, leave the directory, tell the monitors."""
        leftovers = self._mailbox.close()
        for envelope in leftovers:
            if isinstance(envelope, Call):
                # Closing the reply slot wakes the caller with ActorUnavailable.
                envelope.reply_to.close()
        if leftovers:
            logger.info("%s: ended with %d message(s) unhandled", self.id, len(leftovers))
        self._directory.discard(self)
        monitors, self._monitors = self._monitors, []
        for watcher, message in monitors:
            self._notify(watcher, message)

    def _notify(self, watcher: ActorRef[Any, Any, Any], message: object) -> None:
        try:
            if watcher.info(message):
                return
            problem = "its mailbox is full"
        except ActorError as exc:
            problem = str(exc)
        logger.warning("%s: could not tell %s that it ended: %s", self.id, watcher.id, problem)
