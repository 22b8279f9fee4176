"""`ActorRef`: the stable, public handle to an actor.

A ref is made once per actor, over the actor's slot (`slot.py`), and stays valid across restarts:
messages go into the slot's mailbox whichever incarnation is running. It holds no state of its
own beyond the actor's identity; starting, ending and counting incarnations is the runtime's
business, on the slot.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from parley.actors.errors import ActorUnavailable, CallTimeout, MailboxFull
from parley.actors.idle import IDLE
from parley.actors.mailbox import (
    Call,
    Cast,
    Envelope,
    Failed,
    Info,
    Overflow,
    Reply,
    ReplyCallback,
    ReplySlot,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from parley.actors.slot import ActorSlot, ActorStats

CallT = TypeVar("CallT")
ReplyT = TypeVar("ReplyT")
CastT = TypeVar("CastT")

logger = logging.getLogger(__name__)


class ActorRef(Generic[CallT, ReplyT, CastT]):
    """How other tasks talk to an actor: call, cast, info, send, kill, statistics.

    Made by `ActorSystem.child`. Cheap to pass around; holding one never keeps anything alive.
    Once the actor's slot has ended (`alive` is False) every operation raises `ActorUnavailable`.
    """

    def __init__(
        self, slot: ActorSlot[CallT, ReplyT, CastT], *, overflow: Overflow, call_timeout: float
    ) -> None:
        self.id = slot.id
        self.kind = slot.kind
        self.key = slot.key
        self.overflow = overflow
        self._slot = slot
        self._mailbox = slot.mailbox  # the same object for the slot's life: one look-up less
        self._call_timeout = call_timeout

    def __repr__(self) -> str:
        return f"<ActorRef {self.id}>"

    @property
    def alive(self) -> bool:
        """The actor's slot exists: messages are accepted (and handled, now or after a restart)."""
        return not self._mailbox.closed

    @property
    def idle_timeout(self) -> float | None:
        """Seconds without a message after which the actor stops; None if it never idles out."""
        return self._slot.idle_timeout

    @property
    def running(self) -> bool:
        """An incarnation is up right now."""
        return self._slot.incarnation is not None

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
        # Not `ReplySlot[ReplyT]()`: calling a subscripted generic is measurably slower on a
        # path every call takes; the annotation says the same.
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
        `Chat.submit`), and whose own client keeps the deadline. `call` is the awaiting form: it
        also waits for mailbox room, and keeps a deadline.
        """
        try:
            self._mailbox.put_nowait(Call(message, ReplyCallback(on_reply)))
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
        self._slot.kill(reason)

    def end_if_idle(self) -> bool:
        """End the actor now as its idle timeout would, if it has one and is waiting on an empty
        mailbox; False, and nothing done, otherwise (it is busy, or never idles out).

        It exits with `ExitKind.IDLE`, so a transient actor stays down until it is needed again
        (a conversation restarts on its next message).
        """
        if self.idle_timeout is None or not self.alive:
            return False
        return self._mailbox.interrupt(IDLE)

    def monitor(self, watcher: ActorRef[Any, Any, Any], message: object) -> None:
        """Have `message` delivered to `watcher.info` once this actor's slot ends (Erlang's DOWN).

        Delivered at once if it has ended already. Delivery uses `info`, so it obeys the watcher's
        overflow policy; a lost notice is logged.
        """
        self._slot.monitor(watcher.id, watcher.info, message)

    def statistics(self) -> ActorStats:
        return self._slot.statistics()

    def describe(self) -> dict[str, object]:
        """Statistics, recent errors and the running incarnation's own `describe()`, as
        JSON-able data."""
        return self._slot.describe()

    def queued(self, limit: int) -> list[dict[str, str]]:
        """The first `limit` messages waiting in the mailbox, by kind and type only."""
        return self._slot.queued(limit)

    def _deliver(self, envelope: Envelope[CallT, ReplyT, CastT]) -> bool:
        try:
            self._mailbox.put_nowait(envelope)
        except trio.WouldBlock:
            return self._overflowed(envelope)
        except trio.ClosedResourceError:
            raise ActorUnavailable(self.id, "not running") from None
        return True

    def _overflowed(self, envelope: Envelope[CallT, ReplyT, CastT]) -> bool:
        self._slot.dropped += 1
        what = type(envelope.message).__name__
        capacity = self._mailbox.capacity
        if self.overflow is Overflow.RAISE:
            raise MailboxFull(self.id, f"mailbox full ({capacity}); {what} not delivered")
        if self.overflow is Overflow.KILL:
            logger.warning("%s: mailbox full (%d) on %s; killing it", self.id, capacity, what)
            self.kill(f"mailbox overflow ({capacity} messages)")
        return False
