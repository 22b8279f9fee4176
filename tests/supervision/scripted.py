"""A child whose life the test scripts: it starts, then crashes or returns when told to."""

from __future__ import annotations

import trio

from parley.supervision import ChildSpec, Restart

Event = tuple[str, str]
"""(what happened, child name): ("start", "a"), ("stop", "a"), ("crash", "a"), ("return", "a")."""


class CrashError(Exception):
    """What a scripted child raises when told to crash."""


class StartupError(Exception):
    """What a scripted child raises before `started()` when told to fail its start."""


class ScriptedChild:
    """A supervised child driven by the test.

    Each incarnation logs `start`, reports `started(<name>#<n>)` and waits for an order: `crash()`
    makes it raise `CrashError`, `finish()` makes it return. Being cancelled logs `stop`.
    """

    def __init__(
        self,
        name: str,
        log: list[Event],
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown_timeout: float = 1.0,
        failing_starts: int = 0,
    ) -> None:
        self.name = name
        self.log = log
        self.restart = restart
        self.shutdown_timeout = shutdown_timeout
        self.failing_starts = failing_starts
        """How many of the next starts raise `StartupError` before `started()`."""
        self.starts = 0
        self.start_times: list[float] = []
        self._order = trio.Event()
        self._crash = False

    def spec(self) -> ChildSpec:
        return ChildSpec(
            name=self.name,
            start=self.run,
            restart=self.restart,
            shutdown_timeout=self.shutdown_timeout,
        )

    def crash(self) -> None:
        self._crash = True
        self._order.set()

    def finish(self) -> None:
        self._crash = False
        self._order.set()

    async def run(self, *, task_status: trio.TaskStatus[str]) -> None:
        self.starts += 1
        if self.failing_starts:
            self.failing_starts -= 1
            raise StartupError(self.name)
        self._order = trio.Event()
        self.log.append(("start", self.name))
        self.start_times.append(trio.current_time())
        task_status.started(f"{self.name}#{self.starts}")
        ordered = False
        try:
            await self._order.wait()
            ordered = True
        finally:
            if not ordered:
                self.log.append(("stop", self.name))
        if self._crash:
            self.log.append(("crash", self.name))
            raise CrashError(self.name)
        self.log.append(("return", self.name))
