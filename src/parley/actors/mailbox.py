"""The actor's mailbox: a bounded queue owned by the actor's slot, and its envelopes.

The mailbox belongs to the *slot*, not to one incarnation: when the actor crashes and its
supervisor restarts it, the new incarnation reads the same mailbox, so refs held by others stay
valid and messages queued at the time of the crash are still there (only the one being handled is
lost). It is closed when the slot ends for good, and reopened if a supervisor starts the slot again
(a restarted parent supervisor re-creating its static children).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeAlias, TypeVar

import trio

from parley.actors.waiter import Waiter

if TYPE_CHECKING:
    from parley.actors.errors import ActorError

CallT = TypeVar("CallT")
ReplyT = TypeVar("ReplyT")
CastT = TypeVar("CastT")
ItemT = TypeVar("ItemT")

log = logging.getLogger(__name__)


class Overflow(enum.StrEnum):
    """What a non-blocking cast does when the mailbox is full; each kind of actor declares one.

    Every overflow is counted in the actor's `dropped` statistic, whatever the policy.
    """

    DROP = "drop"
    """The message is dropped; the sender is told only by `cast()` returning False."""
    RAISE = "raise"
    """The sender gets `MailboxFull` and decides."""
    KILL = "kill"
    """The message is dropped and the actor is killed: a consumer that cannot keep up is cut off
    (slow session consumers) rather than allowed to slow down whoever feeds it."""


@dataclass(frozen=True, slots=True)
class Ok(Generic[ReplyT]):
    """A call's successful reply."""

    value: ReplyT


@dataclass(frozen=True, slots=True)
class Failed:
    """A call's failure, raised in the caller."""

    error: ActorError


Reply: TypeAlias = Ok[ReplyT] | Failed


class ReplySlot(Waiter[Reply[ReplyT] | None]):
    """An awaited call's one-shot answer: the actor fills it (or closes it unanswered), the caller
    waits in `wait`.

    Lighter than a one-message memory channel (a call is on every REST send's path): no channel
    ends, no task sets, one wake-up, and it is its own `Waiter`, so a call costs one object. A
    caller that stops waiting (a timeout, a cancellation) closes it, and a reply that comes later
    is dropped.
    """

    __slots__ = ("_reply", "closed")

    def __init__(self) -> None:
        self.task = None  # `Waiter.__init__`'s one line, without the call (one slot per call)
        self._reply: Reply[ReplyT] | None = None
        self.closed = False

    def send(self, reply: Reply[ReplyT]) -> None:
        """Answer the call; a no-op once answered, closed, or given up by the caller."""
        if self.closed:
            return
        self.closed = True
        self._reply = reply
        self.wake(reply)

    def close(self) -> None:
        """No answer will come: a waiting caller gets `trio.EndOfChannel`."""
        if self.closed:
            return
        self.closed = True
        self.wake(None)

    async def wait(self) -> Reply[ReplyT]:
        """The reply; `trio.EndOfChannel` if the slot was closed without one."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.closed:
            await trio.lowlevel.cancel_shielded_checkpoint()
            reply = self._reply
        else:
            try:
                reply = await self.park()
            except BaseException:
                self.closed = True  # the caller gave up: an answer after this is dropped
                raise
        if reply is None:
            raise trio.EndOfChannel
        return reply


class ReplyCallback(Generic[ReplyT]):
    """A call's answer for a caller that does not wait in a task (`ActorRef.call_soon`).

    `callback` is called once, with the reply or with None when the call is closed unanswered,
    from whichever task answers or closes it (the actor's, or its slot's end). It must not block;
    an exception from it is logged, never raised into that task.
    """

    __slots__ = ("_callback", "closed")

    def __init__(self, callback: Callable[[Reply[ReplyT] | None], None]) -> None:
        self._callback = callback
        self.closed = False

    def send(self, reply: Reply[ReplyT]) -> None:
        """Answer the call; a no-op once answered or closed."""
        if not self.closed:
            self.closed = True
            self._call_back(reply)

    def close(self) -> None:
        """No answer will come: the callback gets None (a no-op once answered)."""
        if not self.closed:
            self.closed = True
            self._call_back(None)

    def _call_back(self, reply: Reply[ReplyT] | None) -> None:
        try:
            self._callback(reply)
        except Exception:
            log.exception("a call's reply callback failed")


ReplyTo: TypeAlias = ReplySlot[ReplyT] | ReplyCallback[ReplyT]
"""Where a call's answer goes: a waiting caller's slot, or a callback."""


@dataclass(frozen=True, slots=True)
class Call(Generic[CallT, ReplyT]):
    """A request answered through its own `reply_to` (pykka's name).

    The actor closes `reply_to` once it is done with the call, whatever happens, so a caller whose
    actor went down learns it (`EndOfChannel`, or None for a callback) instead of waiting forever.
    """

    message: CallT
    reply_to: ReplyTo[ReplyT]


@dataclass(frozen=True, slots=True)
class Cast(Generic[CastT]):
    """A fire-and-forget message for `handle_cast`."""

    message: CastT


@dataclass(frozen=True, slots=True)
class Info:
    """A message from outside the actor's protocol (timers, monitors) for `handle_info`."""

    message: object


Envelope: TypeAlias = Call[CallT, ReplyT] | Cast[CastT] | Info


class Mailbox(Generic[ItemT]):
    """A bounded FIFO with one reader (the actor) that can be closed (failing every queued call)
    and opened again.

    Built on a `Waiter` for its reader rather than on a memory channel: every session is an
    actor, so the mailbox is paid once per connection, and a channel's two ends, state and deque
    cost kilobytes per idle actor where this costs a list and a waiter (docs/architecture.md,
    "Measurements behind the runtime"). Semantics follow trio's channels but one: `put` and `get`
    are cancellation points, `get` is cancellation-atomic, and a full mailbox makes `put` wait
    until the actor takes a message; but neither yields to the scheduler unless it has to wait.
    So an actor takes every message already queued in one turn (at most `capacity`), and its
    throughput does not depend on how long a scheduler round takes under load. Its methods raise
    trio's own channel errors; `ActorRef` turns them into actor errors.
    """

    __slots__ = ("_items", "_reader", "_senders", "capacity", "closed")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a mailbox needs a capacity of at least 1")
        self.capacity = capacity
        self.closed = False
        self._items: list[ItemT] = []
        """Queued messages, oldest first (short in practice, so a list beats a deque's 0.5 KB
        first block)."""
        self._reader: Waiter[ItemT] = Waiter()
        """Where the actor waits in `get` on an empty mailbox."""
        self._senders: trio.lowlevel.ParkingLot | None = None
        """Senders waiting for room; made on the first overflow."""

    @property
    def depth(self) -> int:
        """How many messages are waiting."""
        return len(self._items)

    def put_nowait(self, item: ItemT) -> None:
        """Queue `item` or raise `trio.WouldBlock` (full) / `trio.ClosedResourceError` (closed)."""
        if self.closed:
            raise trio.ClosedResourceError("the mailbox is closed")
        reader = self._reader
        if reader.task is not None:  # not `reader.wake(item)`: no call per message while busy
            # The reader is parked on an empty mailbox: hand the item over directly.
            reader.wake(item)
            return
        if len(self._items) >= self.capacity:
            raise trio.WouldBlock
        self._items.append(item)

    async def put(self, item: ItemT) -> None:
        """Queue `item`, waiting only if there is no room; `trio.ClosedResourceError` if closed
        meanwhile."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                self.put_nowait(item)
            except trio.WouldBlock:
                if self._senders is None:
                    self._senders = trio.lowlevel.ParkingLot()
                await self._senders.park()
                continue
            return

    async def get(self) -> ItemT:
        """The next message, waiting only if there is none; cancellation-atomic, so a timeout
        around it never loses one.

        Raises:
            trio.ClosedResourceError: the mailbox is closed (or closes while waiting).
            trio.BusyResourceError: another task is already waiting in `get`.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._items:
            item = self._items.pop(0)
            if self._senders:
                self._senders.unpark()
            return item
        if self.closed:
            raise trio.ClosedResourceError("the mailbox is closed")
        return await self._reader.park()

    def peek(self, limit: int) -> list[ItemT]:
        """The first `limit` queued messages, oldest first, left in place (for operators)."""
        return self._items[:limit]

    @property
    def waiting(self) -> bool:
        """The reader is parked in `get` on an empty mailbox."""
        return self._reader.task is not None

    def interrupt(self, item: ItemT) -> bool:
        """Hand `item` to a reader parked on an empty mailbox, outside the queue (no message can
        be behind it); False, and nothing done, when no reader waits."""
        return self._reader.wake(item)

    def close(self) -> list[ItemT]:
        """Refuse new messages, wake blocked senders with an error, and return what was queued."""
        if self.closed:
            return []
        self.closed = True
        leftovers, self._items = self._items, []
        if self._senders is not None:
            self._senders.unpark_all()  # they find the mailbox closed and raise
        self._reader.fail(trio.ClosedResourceError("the mailbox is closed"))
        return leftovers

    def reopen(self) -> None:
        """Take messages again after `close()` (it is empty); a no-op while open."""
        self.closed = False
