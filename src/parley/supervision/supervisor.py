"""`Supervisor`: a fixed list of children, started in order, restarted by a strategy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley.config import SupervisionSettings
from parley.supervision._core import SupervisorBase
from parley.supervision._slot import ChildSlot
from parley.supervision.spec import ChildSpec, Strategy

if TYPE_CHECKING:
    from collections.abc import Sequence

_DEFAULTS = SupervisionSettings()


class Supervisor(SupervisorBase):
    """Runs a fixed, ordered list of children and keeps them running (Erlang's supervisor).

    `run()` starts the children one by one with `nursery.start`, so child N+1 starts only once child
    N is serving, and reports `started(self)` when all are up. A child's crash is handled by its
    restart type and the strategy:

    - ONE_FOR_ONE: only that child is restarted;
    - ONE_FOR_ALL: every other child is stopped (reverse start order), then all start again in
      order;
    - REST_FOR_ONE: the children started after it are stopped (reverse order), then it and they
      start again in order. Use it when later children depend on earlier ones (the root tree).

    More than `max_restarts` restarts within `window_seconds` stops every child and raises
    `SupervisorEscalation` out of `run()`. Each restart waits `backoff_seconds` first.

    A supervisor is itself a child of another (`parent_children=[sup.child_spec()]`), so trees nest.
    One `Supervisor` object runs at most once at a time; a parent may run it again after it ended.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = _DEFAULTS.max_restarts,
        window_seconds: float = _DEFAULTS.restart_window_seconds,
        backoff_seconds: float = _DEFAULTS.restart_backoff_seconds,
        describe_max_children: int = _DEFAULTS.describe_max_children,
    ) -> None:
        super().__init__(
            name,
            max_restarts=max_restarts,
            window_seconds=window_seconds,
            backoff_seconds=backoff_seconds,
            describe_max_children=describe_max_children,
        )
        names = [spec.name for spec in children]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"supervisor {name!r}: duplicate child names {duplicates}")
        self._strategy = strategy
        self._specs = tuple(children)
        self._slots = [ChildSlot(spec) for spec in self._specs]

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    def _slots_in_order(self) -> list[ChildSlot]:
        return list(self._slots)

    def _reset_slots(self) -> None:
        self._slots = [ChildSlot(spec) for spec in self._specs]

    async def _start_initial(self) -> None:
        for slot in self._slots:
            await self._start_slot(slot, restart=False)

    def _restart_group(self, slot: ChildSlot) -> list[ChildSlot]:
        if self._strategy is Strategy.ONE_FOR_ALL:
            return list(self._slots)
        if self._strategy is Strategy.REST_FOR_ONE:
            return self._slots[self._slots.index(slot) :]
        return [slot]
