"""A child's slot under its supervisor (`ChildSlot`) and one run of it (`Incarnation`).

The slot outlives incarnations: it holds the child's status, restarts and last error for the
operator's view, while each incarnation has its own cancel scope and exit event.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import trio

from parley.supervision.spec import ChildSpec, ChildStats, ChildStatus

if TYPE_CHECKING:
    from collections.abc import Mapping


class Incarnation:
    """One run of a child's start function, from its start to its exit."""

    __slots__ = ("_exited", "has_exited", "scope", "stopping")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.has_exited = False
        self._exited: trio.Event | None = None
        """Made only for a stop that waits for the exit: an idle child holds no event (and
        no set of waiting tasks), ~0.3 KB per idle session."""
        self.stopping = False
        """Set when the supervisor asked it to stop: its exit is then expected, not a crash."""

    def exit(self) -> None:
        """The incarnation's start function has returned or raised."""
        self.has_exited = True
        if self._exited is not None:
            self._exited.set()

    async def wait_exited(self) -> None:
        if self.has_exited:
            await trio.lowlevel.checkpoint()
            return
        if self._exited is None:
            self._exited = trio.Event()
        await self._exited.wait()


class ChildSlot:
    """A child's place under its supervisor: it outlives incarnations and holds the stats."""

    __slots__ = ("incarnation", "last_error", "restarts", "retired", "spec", "started_at", "status")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.status = ChildStatus.STOPPED
        self.restarts = 0
        self.started_at: datetime | None = None
        self.last_error: str | None = None
        self.incarnation: Incarnation | None = None
        self.retired = False
        """The slot ended for good (`on_terminated` ran); it will never be started again."""

    def stats(self) -> ChildStats:
        return ChildStats(
            name=self.spec.name,
            restart=self.spec.restart,
            status=self.status,
            restarts=self.restarts,
            started_at=self.started_at,
            last_error=self.last_error,
            details=self._details(),
        )

    def _details(self) -> Mapping[str, object] | None:
        if self.spec.describe is None:
            return None
        try:
            return self.spec.describe()
        except Exception as exc:
            # The operator's view must never break because one child cannot describe itself.
            return {"describe_error": repr(exc)}
