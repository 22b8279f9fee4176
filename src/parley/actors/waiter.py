"""`Waiter`: one task parked until another hands it a value, the runtime's one parking primitive.

The mailbox's reader, a call's reply slot and the socket layer's writers each have at most one task
waiting for one thing, which another task hands over without waiting itself. trio's `Event` fits
neither half: it cannot carry a value, and a set event cannot be reset for the next wait, so a
fresh one per wait is an allocation per message. `ParkingLot` takes many tasks in an ordered dict
and hands none a value. A `Waiter` is one slot on trio's low-level parking
(`wait_task_rescheduled`); nothing else in the runtime parks a task by hand.

It is edge-triggered and remembers nothing: `wake` with no task parked does nothing and says so
(False), so the owner keeps its own state (a queue, a flag) and parks only while that state says
there is nothing to take, and re-checks it after waking.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import outcome
import trio

ValueT = TypeVar("ValueT")


class Waiter(Generic[ValueT]):
    """At most one parked task, woken with a value (`wake`) or an exception (`fail`).

    `park` always waits (it is a checkpoint), so park only when there is nothing to take yet. A
    cancelled wait unparks the task at once (the abort always succeeds), so nothing handed over
    later is lost in it: `wake` then finds no task, returns False, and the owner keeps the value.
    """

    __slots__ = ("task",)

    task: trio.lowlevel.Task | None
    """The parked task, None while nobody waits. Read it where a call costs too much (per message
    on a hot path, `Mailbox.put_nowait`); only `park`, `wake`, `fail` and the abort change it,
    after `__init__` (which a subclass made once per message may inline: `ReplySlot`)."""

    def __init__(self) -> None:
        self.task = None

    @property
    def waiting(self) -> bool:
        """A task is parked."""
        return self.task is not None

    async def park(self) -> ValueT:
        """Wait until woken: the value given to `wake`, or raise what was given to `fail`.

        Raises:
            trio.BusyResourceError: another task is parked here already.
        """
        if self.task is not None:
            raise trio.BusyResourceError("another task is already waiting here")
        self.task = trio.lowlevel.current_task()
        value: ValueT = await trio.lowlevel.wait_task_rescheduled(self._abort)
        return value

    def wake(self, value: ValueT) -> bool:
        """Hand `value` to the parked task; False, and nothing done, when no task is parked."""
        task = self.task
        if task is None:
            return False
        self.task = None
        trio.lowlevel.reschedule(task, outcome.Value(value))
        return True

    def fail(self, error: BaseException) -> bool:
        """Raise `error` in the parked task; False, and nothing done, when no task is parked."""
        task = self.task
        if task is None:
            return False
        self.task = None
        trio.lowlevel.reschedule(task, outcome.Error(error))
        return True

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED
