"""What a supervisor needs to know about a child: how to start, restart and stop it.

Everything here is plain data; the behaviour lives in `supervisor.py` and `dynamic.py`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from parley.config import SupervisionSettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from datetime import datetime

_DEFAULTS = SupervisionSettings()


class Restart(enum.StrEnum):
    """When a child that has stopped is started again (Erlang's restart types)."""

    PERMANENT = "permanent"
    """Always restarted, whether it crashed or returned."""
    TRANSIENT = "transient"
    """Restarted only after a crash; a normal return ends it for good."""
    TEMPORARY = "temporary"
    """Never restarted; its slot ends the first time it stops."""


class Strategy(enum.StrEnum):
    """Which children a crash takes down with it before they are all started again."""

    ONE_FOR_ONE = "one_for_one"
    """Only the crashed child is restarted; its siblings never notice."""
    ONE_FOR_ALL = "one_for_all"
    """Every other child is stopped (in reverse start order), then all are started in order."""
    REST_FOR_ONE = "rest_for_one"
    """Children started after the crashed one are stopped (in reverse), then it and they restart."""


class ChildStatus(enum.StrEnum):
    """Where a child slot is in its life, as operators see it."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    """Down after a crash (or taken down with a crashed sibling) and about to be started again."""
    STOPPING = "stopping"
    STOPPED = "stopped"
    ABANDONED = "abandoned"
    """Overstayed its shutdown grace in a shielded scope; the supervisor stopped waiting for it."""


@dataclass(frozen=True)
class ChildSpec:
    """How to run one supervised child.

    `start` is called as `await nursery.start(spec.start)`: it receives `task_status=` and must
    call `task_status.started(value)` once it can serve. An exception raised before `started` comes
    out of the supervisor's start (so a startup crash reaches whoever started the supervisor or
    called `DynamicSupervisor.start_child`); one raised after it is a crash, handled by `restart`.

    To stop a child, the supervisor cancels the child's own cancel scope and waits at most
    `shutdown_timeout` seconds for it to exit. Cleanup that must run on the way out belongs in a
    shielded scope with its own timeout no longer than that grace.
    """

    name: str
    start: Callable[..., Awaitable[object]]
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = _DEFAULTS.child_shutdown_seconds
    """Seconds of grace between asking the child to stop and abandoning it. Use `math.inf` for a
    nested supervisor, whose own children have their own bounded timeouts (as Erlang advises)."""
    describe: Callable[[], Mapping[str, object]] | None = None
    """Optional JSON-able description for the debug tree (a nested supervisor passes its own)."""
    on_terminated: Callable[[], None] | None = field(default=None, repr=False)
    """Called exactly once when the slot ends for good: the child will not be started again (a
    temporary child stopped, a transient child returned, it was terminated, its start failed, or the
    supervisor stopped). Actors use it to close their mailbox so callers stop waiting."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ChildSpec.name must not be empty")
        if self.shutdown_timeout < 0:
            raise ValueError(f"ChildSpec {self.name!r}: shutdown_timeout must be >= 0")


@dataclass(frozen=True)
class ChildStats:
    """A snapshot of one child slot."""

    name: str
    restart: Restart
    status: ChildStatus
    restarts: int
    """How many times this slot was started again during the supervisor's current run."""
    started_at: datetime | None
    """Wall-clock time (UTC) the current (or last) incarnation reported itself started."""
    last_error: str | None
    """`repr` of the last exception the child raised, kept across restarts."""
    details: Mapping[str, object] | None
    """The spec's `describe()`; for a nested supervisor, its own description with its children."""


@dataclass(frozen=True)
class SupervisorStats:
    """A snapshot of a supervisor and its children, in start order."""

    name: str
    strategy: Strategy
    max_restarts: int
    window_seconds: float
    recent_restarts: int
    """Restarts counted in the current window; reaching more than `max_restarts` escalates."""
    running: bool
    children: tuple[ChildStats, ...]
    children_total: int
    """How many children the supervisor holds; `children` may list only the first ones."""

    def as_dict(self) -> dict[str, object]:
        """The same snapshot as JSON-able data, for `/debug/tree`."""
        return {
            "name": self.name,
            "strategy": self.strategy.value,
            "intensity": {
                "max_restarts": self.max_restarts,
                "window_seconds": self.window_seconds,
                "recent_restarts": self.recent_restarts,
            },
            "running": self.running,
            "children": [
                {
                    "name": child.name,
                    "restart": child.restart.value,
                    "status": child.status.value,
                    "restarts": child.restarts,
                    "started_at": child.started_at.isoformat() if child.started_at else None,
                    "last_error": child.last_error,
                    "details": dict(child.details) if child.details is not None else None,
                }
                for child in self.children
            ],
            "children_total": self.children_total,
        }
