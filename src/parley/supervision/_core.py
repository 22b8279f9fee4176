"""What `Supervisor` and `DynamicSupervisor` share: child slots, the restart loop, shutdown.

How a supervisor is built out of trio parts
===========================================
- Every child incarnation runs in a small wrapper task inside the supervisor's *children nursery*.
  The wrapper enters a cancel scope of its own (hypercorn's `TrioSingleTask` idea), so the
  supervisor can stop that one child without touching its siblings, and it catches the child's
  `Exception` after `started()`, so a crash is *reported* to the supervisor instead of cancelling
  the nursery. `Cancelled` and other BaseExceptions pass through untouched.
- The wrapper posts one `_Exit` per incarnation into a channel; a single control loop reads them
  and applies the restart type, the strategy and the intensity rule. One loop means restarts are
  serialised: a one_for_all restart never interleaves with another crash's handling.
- The children nursery is shielded from the outside world: when the supervisor is cancelled by its
  parent, its children are not all cancelled at once but stopped by the supervisor itself, one by
  one in reverse start order, each with its own bounded grace.

Error handling
==============
A crash after `started()` is logged and handled by the restart rules. Too many restarts raise
`SupervisorEscalation` out of `run()` after every child has been stopped. A startup error (before
`started()`) comes out of whatever started the child: `run()` for the static children (after the
ones already up were stopped), `DynamicSupervisor.start_child` for dynamic ones.

Resource handling
=================
Stopping a child cancels its scope and waits `shutdown_timeout` for it to exit. trio cannot
interrupt code running under a shield, so a child that overstays its grace is *abandoned*: it is
logged and marked `abandoned`, and the supervisor carries on stopping the rest. The task still
belongs to the children nursery (nothing outlives its parent in trio), so `run()` itself returns
once the straggler's shielded scope ends; our convention that every shield carries its own timeout
bounds that wait. `shutdown()` returns as soon as every child was stopped or abandoned.
"""

from __future__ import annotations

import abc
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Self

import trio

from parley.supervision.errors import ChildStoppedError, SupervisorEscalation
from parley.supervision.intensity import RestartIntensity
from parley.supervision.spec import (
    ChildSpec,
    ChildStatus,
    Restart,
    Strategy,
    SupervisorStats,
)

if TYPE_CHECKING:
    pass

from parley.supervision._slot import ChildSlot, Incarnation

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Exit:
    """An incarnation ended after `started()`: returned (`error` None) or crashed."""

    slot: ChildSlot
    incarnation: Incarnation
    error: Exception | None


class _StartProbe:
    """Forwards `started()` to trio's task status and remembers that it happened.

    The wrapper needs to know whether an exception came before `started()` (a startup error, which
    must reach the starter) or after it (a crash, which the supervisor handles).
    """

    __slots__ = ("_task_status", "started_once")

    def __init__(self, task_status: trio.TaskStatus[object]) -> None:
        self._task_status: trio.TaskStatus[object] | None = task_status
        self.started_once = False

    def started(self, value: object = None) -> None:
        task_status = self._task_status
        if task_status is None:
            raise RuntimeError("called 'started' twice on the same task status")
        task_status.started(value)
        # trio's task status holds the nursery the child started in until it is dropped: a
        # long-lived child (a socket's session) would keep it, its cancel scope and its sets
        # (~1.3 KB per idle session, tracemalloc).
        self._task_status = None
        self.started_once = True


class _Run:
    """What exists only while a supervisor's `run()` runs."""

    def __init__(self, children: trio.Nursery, intensity: RestartIntensity) -> None:
        self.children = children
        self.intensity = intensity
        # Unbounded on purpose: each incarnation posts exactly one `_Exit`, so the queue can never
        # hold more than one entry per live child, and a crashing child must never block on it.
        self.exits_send, self.exits_receive = trio.open_memory_channel[_Exit](math.inf)
        self.scope = trio.CancelScope()
        """Covers start-up and supervision; `shutdown()` cancels it to begin the ordered stop."""
        self.accepting = False
        self.stopped = trio.Event()


def _restarts_after(restart: Restart, *, crashed: bool) -> bool:
    return restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and crashed)


async def _hold_children(
    release: trio.Event, *, task_status: trio.TaskStatus[trio.Nursery]
) -> None:
    """Own the children nursery until `release` is set, shielded from outside cancellation."""
    async with trio.open_nursery() as children:
        # The supervisor stops its children itself, in reverse start order with bounded grace;
        # the parent's cancellation must not reach them all at once and short-circuit that.
        children.cancel_scope.shield = True
        task_status.started(children)
        await release.wait()


class SupervisorBase(abc.ABC):
    """What both supervisors share; see the module docstring for how it works."""

    def __init__(
        self,
        name: str,
        *,
        max_restarts: int,
        window_seconds: float,
        backoff_seconds: float,
        describe_max_children: int,
    ) -> None:
        if backoff_seconds < 0:
            raise ValueError("backoff_seconds must be >= 0")
        if describe_max_children < 0:
            raise ValueError("describe_max_children must be >= 0")
        # Validates max_restarts and window_seconds once, here, rather than at the first crash.
        RestartIntensity(max_restarts, window_seconds)
        self.name = name
        self.max_restarts = max_restarts
        self.window_seconds = window_seconds
        self.backoff_seconds = backoff_seconds
        self.describe_max_children = describe_max_children
        """Children `describe()` lists; the rest are counted in `children_total`."""
        self._run: _Run | None = None
        self._in_run = False
        """Set for the whole of `run()`, stragglers included: one run at a time."""

    @property
    @abc.abstractmethod
    def strategy(self) -> Strategy:
        """The strategy applied when a child has to be restarted."""

    @abc.abstractmethod
    def _slots_in_order(self) -> list[ChildSlot]:
        """Every current slot, in start order."""

    @abc.abstractmethod
    def _reset_slots(self) -> None:
        """Prepare fresh slots for a new run."""

    @abc.abstractmethod
    async def _start_initial(self) -> None:
        """Start the children a run begins with (raising the first startup error)."""

    @abc.abstractmethod
    def _restart_group(self, slot: ChildSlot) -> list[ChildSlot]:
        """The slots (in start order) restarted along with `slot`, `slot` included."""

    def _discard(self, slot: ChildSlot) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Forget a retired slot (a dynamic supervisor drops it; a static one keeps it listed)."""

    def _holds(self, slot: ChildSlot) -> bool:
        """Whether `slot` is still this supervisor's to restart."""
        return not slot.retired

    @property
    def running(self) -> bool:
        return self._run is not None

    async def run(self, *, task_status: trio.TaskStatus[Self] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order, report `started(self)`, then supervise until stopped.

        Returns normally after `shutdown()`. When cancelled, stops every child in reverse start
        order (each within its grace) and lets the cancellation through. Raises the first child's
        startup error, or `SupervisorEscalation` when restarts exceed the intensity; in both cases
        every child has been stopped first.
        """
        if self._in_run:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        self._in_run = True
        try:
            await self._run_once(task_status)
        finally:
            self._in_run = False

    async def _run_once(self, task_status: trio.TaskStatus[Self]) -> None:
        failure: Exception | None = None
        release = trio.Event()
        async with trio.open_nursery() as nursery:
            children: trio.Nursery = await nursery.start(_hold_children, release)
            run = self._run = _Run(
                children, RestartIntensity(self.max_restarts, self.window_seconds)
            )
            self._reset_slots()
            try:
                with run.scope:
                    await self._start_initial()
                    run.accepting = True
                    task_status.started(self)
                    await self._supervise(run)
            except Exception as exc:
                # Raised below, outside the nursery, so the parent sees the error itself rather
                # than an ExceptionGroup wrapping it.
                failure = exc
            finally:
                run.accepting = False
                # The ordered stop must finish even when we are being cancelled; each child's wait
                # inside it is bounded by that child's own shutdown_timeout.
                with trio.CancelScope(shield=True):
                    await self._stop_all()
                run.stopped.set()
                self._run = None
                release.set()
        if failure is not None:
            raise failure

    async def shutdown(self) -> None:
        """Stop every child in reverse start order, then let `run()` return normally.

        Returns once every child has exited or been abandoned; `run()` itself returns when its
        last task (an abandoned straggler included) is gone. A no-op when not running.
        """
        run = self._run
        if run is None:
            return
        run.scope.cancel()
        await run.stopped.wait()

    def child_spec(
        self,
        *,
        name: str | None = None,
        restart: Restart = Restart.PERMANENT,
        shutdown_timeout: float = math.inf,
    ) -> ChildSpec:
        """A spec that runs this supervisor as the child of another one (trees nest this way).

        The default grace is unbounded because our own children's stops are each bounded.
        """
        return ChildSpec(
            name=name or self.name,
            start=self.run,
            restart=restart,
            shutdown_timeout=shutdown_timeout,
            describe=self.describe,
        )

    def statistics(self, *, max_children: int | None = None) -> SupervisorStats:
        """A snapshot of this supervisor and its children (nested supervisors included): all of
        them, or the first `max_children` in start order."""
        run = self._run
        slots = self._slots_in_order()
        shown = slots if max_children is None else slots[:max_children]
        return SupervisorStats(
            name=self.name,
            strategy=self.strategy,
            max_restarts=self.max_restarts,
            window_seconds=self.window_seconds,
            recent_restarts=run.intensity.recent(trio.current_time()) if run else 0,
            running=run is not None,
            children=tuple(slot.stats() for slot in shown),
            children_total=len(slots),
        )

    def describe(self) -> dict[str, object]:
        """`statistics()` as JSON-able data for `/debug/tree`, listing at most
        `describe_max_children` children."""
        return self.statistics(max_children=self.describe_max_children).as_dict()

    # -- starting and stopping one child ------------------------------------------------------

    async def _start_slot(self, slot: ChildSlot, *, restart: bool) -> object:
        """Start an incarnation of `slot`; return its `started()` value or raise its start error."""
        run = self._run
        assert run is not None, "children are only started while running"
        slot.status = ChildStatus.STARTING
        if restart:
            slot.restarts += 1
        incarnation = slot.incarnation = Incarnation()
        try:
            # Named by the child's own name: trio would format a fresh name per task otherwise.
            value = await run.children.start(
                self._run_incarnation, run, slot, incarnation, name=slot.spec.name
            )
        except BaseException as exc:
            if slot.incarnation is incarnation:
                slot.incarnation = None
            slot.status = ChildStatus.RESTARTING if restart else ChildStatus.STOPPED
            if isinstance(exc, Exception):
                slot.last_error = repr(exc)
                if incarnation.stopping:
                    # trio reports a child cancelled before `started()` as a RuntimeError; say
                    # what actually happened instead.
                    raise ChildStoppedError(
                        f"child {slot.spec.name!r} was stopped before it finished starting"
                    ) from exc
            raise
        slot.status = ChildStatus.RUNNING
        slot.started_at = datetime.now(UTC)
        return value

    async def _run_incarnation(
        self,
        run: _Run,
        slot: ChildSlot,
        incarnation: Incarnation,
        *,
        task_status: trio.TaskStatus[object],
    ) -> None:
        probe = _StartProbe(task_status)
        del task_status  # only the probe may hold it past started() (see `_StartProbe`)
        error: Exception | None = None
        try:
            with incarnation.scope:
                await slot.spec.start(task_status=probe)
        except Exception as exc:
            if not probe.started_once:
                raise  # a startup error: `nursery.start` hands it to whoever started the child
            error = exc
        finally:
            incarnation.exit()
        if not probe.started_once:
            return  # stopped or returned before `started()`: trio's `start` reports that
        if error is not None:
            slot.last_error = repr(error)
            if incarnation.stopping:
                logger.warning(
                    "supervisor %r: child %r failed while stopping",
                    self.name,
                    slot.spec.name,
                    exc_info=error,
                )
            else:
                logger.error(
                    "supervisor %r: child %r crashed", self.name, slot.spec.name, exc_info=error
                )
        run.exits_send.send_nowait(_Exit(slot, incarnation, error))

    async def _stop_slot(self, slot: ChildSlot) -> None:
        """Cancel the child's scope and wait up to its shutdown_timeout for it to exit."""
        incarnation = slot.incarnation
        if incarnation is None:
            return
        incarnation.stopping = True
        slot.status = ChildStatus.STOPPING
        incarnation.scope.cancel()
        with trio.move_on_after(slot.spec.shutdown_timeout):
            await incarnation.wait_exited()
        if slot.incarnation is incarnation:
            slot.incarnation = None
        if incarnation.has_exited:
            slot.status = ChildStatus.STOPPED
        else:
            slot.status = ChildStatus.ABANDONED
            logger.error(
                "supervisor %r: child %r still running %gs after it was cancelled; abandoned",
                self.name,
                slot.spec.name,
                slot.spec.shutdown_timeout,
            )

    def _retire(self, slot: ChildSlot) -> None:
        """End a slot for good: it will not be started again, and its owner is told once."""
        if slot.retired:
            return
        slot.retired = True
        if slot.status is not ChildStatus.ABANDONED:
            slot.status = ChildStatus.STOPPED
        self._discard(slot)
        if slot.spec.on_terminated is not None:
            try:
                slot.spec.on_terminated()
            except Exception:
                logger.exception(
                    "supervisor %r: on_terminated of child %r failed", self.name, slot.spec.name
                )

    async def _stop_all(self) -> None:
        for slot in reversed(self._slots_in_order()):
            await self._stop_slot(slot)
            self._retire(slot)

    # -- the control loop ---------------------------------------------------------------------

    async def _supervise(self, run: _Run) -> None:
        async for event in run.exits_receive:
            slot = event.slot
            if event.incarnation is not slot.incarnation or event.incarnation.stopping:
                continue  # an exit we caused by stopping it, or a stale one from before a restart
            slot.incarnation = None
            if not self._holds(slot):
                continue
            if not _restarts_after(slot.spec.restart, crashed=event.error is not None):
                self._retire(slot)
                continue
            await self._restart(run, slot, event.error)

    def _within_intensity(self, run: _Run, slot: ChildSlot) -> bool:
        """Count a restart of `slot`; False when that exceeds the intensity."""
        return run.intensity.record(trio.current_time())

    def _gives_up_alone(self, slot: ChildSlot, error: Exception | None) -> bool:
        """Past the intensity: True to stop `slot` for good and carry on, False to escalate."""
        return False

    async def _restart(self, run: _Run, failed: ChildSlot, error: Exception | None) -> None:
        """Restart `failed` and its strategy group; a failed restart counts as another crash."""
        pending: tuple[ChildSlot, Exception | None] | None = (failed, error)
        while pending is not None:
            failed, error = pending
            pending = None
            if not self._within_intensity(run, failed):
                if self._gives_up_alone(failed, error):
                    self._retire(failed)
                    return
                raise SupervisorEscalation(
                    self.name, failed.spec.name, self.max_restarts, self.window_seconds
                ) from error
            failed.status = ChildStatus.RESTARTING
            group = self._restart_group(failed)
            for sibling in reversed(group):
                if sibling is failed or sibling.incarnation is None:
                    continue
                await self._stop_slot(sibling)
                if sibling.spec.restart is Restart.TEMPORARY:
                    # As in OTP: a temporary child taken down with a sibling is not restarted.
                    self._retire(sibling)
                else:
                    sibling.status = ChildStatus.RESTARTING
            logger.info(
                "supervisor %r: restarting %s (%s) after child %r stopped",
                self.name,
                ", ".join(repr(member.spec.name) for member in group),
                self.strategy.value,
                failed.spec.name,
            )
            await trio.sleep(self.backoff_seconds)
            for member in group:
                if not self._holds(member) or member.status is not ChildStatus.RESTARTING:
                    continue
                try:
                    await self._start_slot(member, restart=True)
                except Exception as exc:
                    logger.error(
                        "supervisor %r: child %r failed to restart",
                        self.name,
                        member.spec.name,
                        exc_info=exc,
                    )
                    if self._holds(member):
                        pending = (member, exc)
                    break
