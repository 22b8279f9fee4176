"""The actor's mailbox: a bounded trio memory channel owned by the actor's slot, and its envelopes.

The mailbox belongs to the *slot*, not to one incarnation: when the actor crashes and its
supervisor restarts it, the new incarnation reads the same channel, so refs held by others stay
valid and messages queued at the time of the crash are still there (only the one being handled is
lost). It is closed when the slot ends for good, and reopened if a supervisor starts the slot again
(a restarted parent supervisor re-creating its static children).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeAlias, TypeVar

import trio

if TYPE_CHECKING:
    from parley.actors.errors import ActorError

CallT = TypeVar("CallT")
ReplyT = TypeVar("ReplyT")
CastT = TypeVar("CastT")
ItemT = TypeVar("ItemT")


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


@dataclass(frozen=True, slots=True)
class Call(Generic[CallT, ReplyT]):
    """A request that waits for an answer on its own one-shot reply channel (pykka's `reply_to`).

    The actor closes `reply_to` once it is done with the call, whatever happens, so a caller whose
    actor went down sees `EndOfChannel` instead of waiting forever.
    """

    message: CallT
    reply_to: trio.MemorySendChannel[Reply[ReplyT]]


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
    """A bounded channel that can be closed (failing every queued call) and opened again.

    Its methods raise trio's own channel errors; `ActorRef` turns them into actor errors.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a mailbox needs a capacity of at least 1")
        self.capacity = capacity
        self._send, self._receive = trio.open_memory_channel[ItemT](capacity)
        self.closed = False

    @property
    def depth(self) -> int:
        """How many messages are waiting."""
        return self._send.statistics().current_buffer_used

    def put_nowait(self, item: ItemT) -> None:
        """Queue `item` or raise `trio.WouldBlock` (full) / `trio.ClosedResourceError` (closed)."""
        self._send.send_nowait(item)

    async def put(self, item: ItemT) -> None:
        """Queue `item`, waiting for space; `trio.ClosedResourceError` if closed meanwhile."""
        await self._send.send(item)

    async def get(self) -> ItemT:
        """The next message; cancellation-atomic, so a timeout around it never loses one."""
        return await self._receive.receive()

    def close(self) -> list[ItemT]:
        """Refuse new messages, wake blocked senders with an error, and return what was queued."""
        if self.closed:
            return []
        self.closed = True
        # Closing our only send end wakes every sender blocked in `put` with ClosedResourceError
        # and lets the drain below end on EndOfChannel once the buffer is empty.
        self._send.close()
        leftovers: list[ItemT] = []
        while True:
            try:
                leftovers.append(self._receive.receive_nowait())
            except (trio.EndOfChannel, trio.WouldBlock):
                break
        self._receive.close()
        return leftovers

    def reopen(self) -> None:
        """Open a fresh, empty channel after `close()`; a no-op while open."""
        if self.closed:
            self._send, self._receive = trio.open_memory_channel[ItemT](self.capacity)
            self.closed = False
