"""`IdleWatch`: stops actors that had no message for their idle timeout, one task for them all.

A timer per actor (a cancel scope around every mailbox wait) costs a scope per message and a
deadline per idle actor, on the path every message takes (docs/architecture.md, "Measurements
behind the runtime"). Instead, an actor with an idle timeout notes when it starts to wait
(`Watched.since`), and `run` looks every `period` seconds: a mailbox that has had its reader
waiting for the timeout is handed `IDLE` (`Mailbox.interrupt`), and the actor returns with
`ExitKind.IDLE`. So it stops between its timeout and its timeout plus `period`. Only the actor's
own task writes its entry and `run` only reads it, on trio's one thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import trio

from parley.actors.mailbox import Info

if TYPE_CHECKING:
    from parley.actors.mailbox import Mailbox

IDLE: Final = Info("idle")
"""What the idle watch hands an actor waiting with nothing to do past its idle timeout."""


class Watched:
    """One actor under the idle watch: its timeout, and when it last began to wait."""

    __slots__ = ("since", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.since = trio.current_time()


class IdleWatch:
    """The one task that stops idle actors (see the module docstring); one per actor system."""

    def __init__(self, period: float) -> None:
        if not period > 0:
            raise ValueError("the idle check period must be positive")
        self.period = period
        self._watched: dict[Mailbox[Any], Watched] = {}

    def __len__(self) -> int:
        return len(self._watched)

    def add(self, mailbox: Mailbox[Any], timeout: float) -> Watched:
        """Watch the actor reading `mailbox`; it updates the returned entry's `since`."""
        watched = self._watched[mailbox] = Watched(timeout)
        return watched

    def discard(self, mailbox: Mailbox[Any]) -> None:
        self._watched.pop(mailbox, None)

    def stop_idle(self, now: float) -> int:
        """Hand `IDLE` to every watched actor waiting past its timeout; returns how many."""
        stopped = 0
        for mailbox, watched in list(self._watched.items()):
            if mailbox.waiting and now - watched.since >= watched.timeout:
                stopped += mailbox.interrupt(IDLE)
        return stopped

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check every `period` seconds, for as long as the system runs (a supervised child)."""
        task_status.started()
        while True:
            await trio.sleep(self.period)
            self.stop_idle(trio.current_time())
