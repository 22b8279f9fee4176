"""`DynamicSupervisor`: children added and removed at run time (sessions, conversations)."""

from __future__ import annotations

import logging

import trio

from parley.config import SupervisionSettings
from parley.supervision._core import SupervisorBase, _Run
from parley.supervision._slot import ChildSlot
from parley.supervision.errors import (
    DuplicateChildError,
    SupervisorNotRunningError,
    TooManyChildrenError,
    UnknownChildError,
)
from parley.supervision.intensity import RestartIntensity
from parley.supervision.spec import ChildSpec, Strategy

logger = logging.getLogger(__name__)

_DEFAULTS = SupervisionSettings()


class DynamicSupervisor(SupervisorBase):
    """Starts children on request and restarts each one on its own (one_for_one).

    Children are named uniquely; a child whose slot ends for good (a temporary child stopped, a
    transient one returned, or `terminate_child`) is forgotten, freeing its name. Restart intensity
    is shared by all children: more than `max_restarts` restarts within `window_seconds` stops them
    all (reverse start order) and raises `SupervisorEscalation` out of `run()`, as a static
    supervisor does. `run()` starts with no children and reports `started(self)` at once.

    With `intensity_per_child`, each child has that intensity of its own instead (as Akka's
    one-for-one strategy counts retries per child): a child restarted more than `max_restarts`
    times within `window_seconds` is stopped for good, logged and counted in `given_up`, and its
    siblings and the supervisor carry on. For children that are independent of each other
    (conversations), so one that crashes on every message cannot take the others down.
    """

    def __init__(
        self,
        name: str,
        *,
        max_restarts: int = _DEFAULTS.max_restarts,
        window_seconds: float = _DEFAULTS.restart_window_seconds,
        backoff_seconds: float = _DEFAULTS.restart_backoff_seconds,
        describe_max_children: int = _DEFAULTS.describe_max_children,
        max_children: int | None = None,
        intensity_per_child: bool = False,
    ) -> None:
        super().__init__(
            name,
            max_restarts=max_restarts,
            window_seconds=window_seconds,
            backoff_seconds=backoff_seconds,
            describe_max_children=describe_max_children,
        )
        if max_children is not None and max_children < 1:
            raise ValueError("max_children must be >= 1 (or None for no limit)")
        self.max_children = max_children
        self.intensity_per_child = intensity_per_child
        self.given_up = 0
        """Children stopped for good past their own intensity (`intensity_per_child`)."""
        self._slots: dict[str, ChildSlot] = {}
        self._intensities: dict[str, RestartIntensity] = {}

    @property
    def strategy(self) -> Strategy:
        return Strategy.ONE_FOR_ONE

    def __len__(self) -> int:
        """How many children are held (running, starting or waiting to restart)."""
        return len(self._slots)

    def __contains__(self, name: object) -> bool:
        return name in self._slots

    async def start_child(self, spec: ChildSpec) -> object:
        """Start a child and return the value it passed to `task_status.started()`.

        Raises:
            SupervisorNotRunningError: the supervisor is not running or is shutting down.
            DuplicateChildError: a child named `spec.name` is already held.
            TooManyChildrenError: `max_children` children are already held.
            ChildStoppedError: the child was terminated (or the supervisor stopped) while starting.
            Exception: whatever the child raised before `started()`; its slot is discarded.
        """
        run = self._run
        if run is None or not run.accepting:
            raise SupervisorNotRunningError(f"supervisor {self.name!r} is not running")
        if spec.name in self._slots:
            raise DuplicateChildError(f"supervisor {self.name!r} already has a child {spec.name!r}")
        if self.max_children is not None and len(self._slots) >= self.max_children:
            raise TooManyChildrenError(
                f"supervisor {self.name!r} already holds {self.max_children} children"
            )
        slot = ChildSlot(spec)
        # Claimed before the first await, so a concurrent start of the same name fails at once.
        self._slots[spec.name] = slot
        try:
            return await self._start_slot(slot, restart=False)
        except BaseException:
            self._retire(slot)
            raise

    async def terminate_child(self, name: str) -> None:
        """Stop a child (within its shutdown_timeout) and forget it; it is not restarted.

        Raises:
            UnknownChildError: no child of that name is held.
        """
        slot = self._slots.get(name)
        if slot is None:
            raise UnknownChildError(f"supervisor {self.name!r} has no child {name!r}")
        # Forgotten first, so a restart the control loop may be preparing skips this slot.
        self._discard(slot)
        await self._stop_slot(slot)
        self._retire(slot)

    def _slots_in_order(self) -> list[ChildSlot]:
        return list(self._slots.values())

    def _reset_slots(self) -> None:
        self._slots = {}

    async def _start_initial(self) -> None:
        """A dynamic supervisor starts empty."""

    def _restart_group(self, slot: ChildSlot) -> list[ChildSlot]:
        return [slot]

    def _discard(self, slot: ChildSlot) -> None:
        if self._holds(slot):
            del self._slots[slot.spec.name]
            self._intensities.pop(slot.spec.name, None)

    def _within_intensity(self, run: _Run, slot: ChildSlot) -> bool:
        if not self.intensity_per_child:
            return super()._within_intensity(run, slot)
        intensity = self._intensities.get(slot.spec.name)
        if intensity is None:
            intensity = RestartIntensity(self.max_restarts, self.window_seconds)
            self._intensities[slot.spec.name] = intensity
        return intensity.record(trio.current_time())

    def _gives_up_alone(self, slot: ChildSlot, error: Exception | None) -> bool:
        if not self.intensity_per_child:
            return False
        self.given_up += 1
        logger.error(
            "supervisor %r: gave up child %r: more than %d restart(s) within %gs",
            self.name,
            slot.spec.name,
            self.max_restarts,
            self.window_seconds,
            exc_info=error,
        )
        return True

    def _holds(self, slot: ChildSlot) -> bool:
        return self._slots.get(slot.spec.name) is slot
