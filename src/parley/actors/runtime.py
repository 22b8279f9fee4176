"""Running actors: the actor system, the operator's directory, and actors as supervised children.

`ActorSystem.child` makes an actor's slot (`slot.py`: mailbox, incarnation, counters), its public
ref (`ref.py`) and the `ChildSpec` that runs it. Each time the supervisor starts that child, the
factory builds a fresh actor, which serves the slot's mailbox until it stops. Whether it comes
back is its supervisor's business (its restart type and strategy); the slot, ref and mailbox stay
the same throughout. This module is the only one that drives a slot.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import trio

from parley.actors.actor import Actor, ExitKind, ExitReason
from parley.actors.errors import ActorCrashed, ActorKilled
from parley.actors.idle import IDLE, IdleWatch
from parley.actors.mailbox import Call, Cast, Envelope, Failed, Ok
from parley.actors.ref import ActorRef
from parley.actors.slot import ActorSlot, ActorStats
from parley.config import ActorSettings, SupervisionSettings
from parley.supervision import ChildSpec, Restart

if TYPE_CHECKING:
    from collections.abc import Callable

CallT = TypeVar("CallT")
ReplyT = TypeVar("ReplyT")
CastT = TypeVar("CastT")

logger = logging.getLogger(__name__)


class ActorDirectory:
    """Every live actor by id: the operator's view (`/debug/actors`, the kill endpoint, metrics).

    A ref is listed when it is made (and again when its slot is started after it ended) and leaves
    when its slot ends. Reads are plain synchronous look-ups, safe because trio runs every task on
    one thread and only switches tasks at checkpoints; no read here awaits. The directory keeps
    each ref's slot beside it so that reads over every actor (`totals_by_kind`, `ranked`) take
    the counters straight from the slots: a node has an actor per socket, and a snapshot per
    actor per scrape cost ~2 µs each (docs/operators.md, "What the console costs").
    """

    def __init__(self) -> None:
        self._refs: dict[str, ActorRef[Any, Any, Any]] = {}
        self._slots: dict[str, ActorSlot[Any, Any, Any]] = {}

    def __len__(self) -> int:
        return len(self._refs)

    def get(self, actor_id: str) -> ActorRef[Any, Any, Any] | None:
        return self._refs.get(actor_id)

    def refs(self) -> list[ActorRef[Any, Any, Any]]:
        """Every live actor's ref, oldest first."""
        return list(self._refs.values())

    def all(self) -> list[ActorStats]:
        """Statistics of every live actor, oldest first."""
        return [ref.statistics() for ref in self._refs.values()]

    def totals_by_kind(self) -> dict[str, KindTotals]:
        """Actors, mailbox depths (sum and deepest), processed, restarts and dropped by kind."""
        totals: dict[str, KindTotals] = {}
        for slot in self._slots.values():
            kind = totals.get(slot.kind)
            if kind is None:
                kind = totals[slot.kind] = KindTotals()
            depth = slot.mailbox.depth
            kind.actors += 1
            kind.mailbox_depth += depth
            kind.mailbox_depth_max = max(kind.mailbox_depth_max, depth)
            kind.processed += slot.processed
            kind.restarts += max(slot.incarnations - 1, 0)
            kind.dropped += slot.dropped
        return totals

    def ranked(
        self, refs: list[ActorRef[Any, Any, Any]], by: RankedBy, *, descending: bool
    ) -> list[ActorRef[Any, Any, Any]]:
        """`refs` (listed ones) ordered by one of their counters; unset start times first."""
        slots = self._slots
        key: Callable[[ActorRef[Any, Any, Any]], Any] = {
            "mailbox_depth": lambda ref: slots[ref.id].mailbox.depth,
            "processed": lambda ref: slots[ref.id].processed,
            "dropped": lambda ref: slots[ref.id].dropped,
            "restarts": lambda ref: slots[ref.id].incarnations,
            "started_at": lambda ref: _started_key(slots[ref.id].started_at),
        }[by]
        return sorted((ref for ref in refs if ref.id in slots), key=key, reverse=descending)

    def add(self, ref: ActorRef[Any, Any, Any], slot: ActorSlot[Any, Any, Any]) -> None:
        self._refs[ref.id] = ref
        self._slots[ref.id] = slot

    def discard(self, ref: ActorRef[Any, Any, Any]) -> None:
        if self._refs.get(ref.id) is ref:
            del self._refs[ref.id]
            del self._slots[ref.id]


RankedBy = Literal["mailbox_depth", "processed", "dropped", "restarts", "started_at"]


@dataclass(slots=True)
class KindTotals:
    """One kind's actors, summed (for `/metrics`)."""

    actors: int = 0
    mailbox_depth: int = 0
    mailbox_depth_max: int = 0
    processed: int = 0
    restarts: int = 0
    dropped: int = 0


def _started_key(started_at: datetime | None) -> tuple[bool, datetime | None]:
    return (started_at is not None, started_at)


@dataclass(frozen=True, slots=True)
class ActorChild(Generic[CallT, ReplyT, CastT]):
    """An actor ready to be started: its ref, and the spec its supervisor runs it with."""

    ref: ActorRef[CallT, ReplyT, CastT]
    spec: ChildSpec


class ActorSystem:
    """What every actor needs, passed explicitly (no module globals): settings and the directory.

    Composition code makes one per process (tests make one per test) and builds every actor with
    `child`.
    """

    def __init__(
        self,
        settings: ActorSettings | None = None,
        supervision: SupervisionSettings | None = None,
    ) -> None:
        self.settings = settings or ActorSettings()
        self.supervision = supervision or SupervisionSettings()
        self.directory = ActorDirectory()
        self.idle_watch = IdleWatch(self.settings.idle_check_seconds)
        """Stops actors with an idle timeout; its `run` must be running for them to stop."""
        self._ids = itertools.count(1)

    def child(
        self,
        actor_class: type[Actor[CallT, ReplyT, CastT]],
        factory: Callable[[], Actor[CallT, ReplyT, CastT]],
        *,
        capacity: int,
        key: str | None = None,
        restart: Restart = Restart.PERMANENT,
        idle_timeout: float | None = None,
        shutdown_timeout: float | None = None,
        name: str | None = None,
    ) -> ActorChild[CallT, ReplyT, CastT]:
        """A new actor of `actor_class`'s kind: its ref, and the spec that runs it.

        The ref is listed in the directory at once and accepts messages before the actor starts;
        they wait in its mailbox of `capacity` messages.

        Args:
            factory: builds a fresh actor for every incarnation.
            restart: PERMANENT (always back), TRANSIENT (back after a crash or kill, not after
                `stop()` or an idle exit), TEMPORARY (never back; sessions).
            idle_timeout: seconds without a message after which the actor returns normally
                (noticed by `idle_watch`).
            shutdown_timeout: grace for `terminate()` when its supervisor stops it (default
                `supervision.child_shutdown_seconds`).
            name: the child's name under its supervisor; defaults to the actor id, which is unique.

        The child reports `started(ref)` once `init()` has returned; an `init()` error is a
        startup error. When the slot ends for good, queued calls fail with `ActorUnavailable`, the
        ref leaves the directory and its monitors are told.
        """
        kind = getattr(actor_class, "kind", None)
        if not isinstance(kind, str) or not kind:
            raise TypeError(f"{actor_class.__name__} must set the class attribute `kind`")
        slot: ActorSlot[CallT, ReplyT, CastT] = ActorSlot(
            f"{kind}-{next(self._ids)}",
            kind,
            key,
            capacity,
            errors_kept=self.settings.recent_errors,
            idle_timeout=idle_timeout,
        )
        ref = ActorRef(
            slot, overflow=actor_class.overflow, call_timeout=self.settings.call_timeout_seconds
        )
        self.directory.add(ref, slot)
        grace = shutdown_timeout
        if grace is None:
            grace = self.supervision.child_shutdown_seconds
        runner = _Runner(
            slot,
            ref,
            factory,
            self.directory,
            None if idle_timeout is None else (self.idle_watch, idle_timeout),
            grace,
        )
        spec = ChildSpec(
            name=name or slot.id,
            start=runner.run,
            restart=restart,
            shutdown_timeout=grace,
            describe=slot.describe,
            on_terminated=runner.retire,
        )
        return ActorChild(ref, spec)


class _Runner(Generic[CallT, ReplyT, CastT]):
    """What a child spec's `start` and `on_terminated` need: the slot they drive, and how."""

    __slots__ = ("directory", "factory", "grace", "idle", "ref", "slot")

    def __init__(
        self,
        slot: ActorSlot[CallT, ReplyT, CastT],
        ref: ActorRef[CallT, ReplyT, CastT],
        factory: Callable[[], Actor[CallT, ReplyT, CastT]],
        directory: ActorDirectory,
        idle: tuple[IdleWatch, float] | None,
        grace: float,
    ) -> None:
        self.slot = slot
        self.ref = ref
        self.factory = factory
        self.directory = directory
        self.idle = idle
        self.grace = grace

    async def run(self, *, task_status: trio.TaskStatus[ActorRef[CallT, ReplyT, CastT]]) -> None:
        """One incarnation: build, init, report started, serve the mailbox, terminate."""
        slot = self.slot
        if slot.reopen():
            self.directory.add(self.ref, slot)
        actor = self.factory()
        actor.ref = self.ref
        incarnation = slot.begin(actor.describe)
        initialized = False
        try:
            with incarnation.scope:
                await actor.init()
                initialized = True
                task_status.started(self.ref)
                reason = await _serve(slot, actor, self.idle)
            if incarnation.scope.cancelled_caught:
                # Only kill() cancels this scope; a supervisor's stop arrives through an outer
                # scope and is not caught here.
                raise ActorKilled(slot.id, incarnation.kill_reason or "killed")
        except BaseException as exc:
            slot.end(incarnation, exc if isinstance(exc, Exception) else None)
            if initialized:
                await _terminate(slot.id, actor, _exit_reason(exc), self.grace)
            raise
        slot.end(incarnation, None)
        await _terminate(slot.id, actor, reason, self.grace)

    def retire(self) -> None:
        """The slot ended for good: it leaves the directory, then fails its queued calls and
        tells its monitors."""
        self.directory.discard(self.ref)
        self.slot.retire()


async def _serve(
    slot: ActorSlot[CallT, ReplyT, CastT],
    actor: Actor[CallT, ReplyT, CastT],
    idle: tuple[IdleWatch, float] | None,
) -> ExitReason:
    mailbox = slot.mailbox
    if idle is None:
        while not actor.stop_requested:
            await _dispatch(slot, actor, await mailbox.get())
            slot.processed += 1
        return ExitReason(ExitKind.NORMAL)
    idle_watch, timeout = idle
    watched = idle_watch.add(mailbox, timeout)
    try:
        while not actor.stop_requested:
            if not mailbox.depth:
                watched.since = trio.current_time()
            envelope = await mailbox.get()
            if envelope is IDLE:
                return ExitReason(ExitKind.IDLE)
            await _dispatch(slot, actor, envelope)
            slot.processed += 1
        return ExitReason(ExitKind.NORMAL)
    finally:
        idle_watch.discard(mailbox)


async def _dispatch(
    slot: ActorSlot[CallT, ReplyT, CastT],
    actor: Actor[CallT, ReplyT, CastT],
    envelope: Envelope[CallT, ReplyT, CastT],
) -> None:
    if isinstance(envelope, Call):
        reply_to = envelope.reply_to
        try:
            result = await actor.handle_call(envelope.message)
        except Exception as exc:
            crashed = ActorCrashed(slot.id, f"crashed handling {type(envelope.message).__name__}")
            crashed.__cause__ = exc
            reply_to.send(Failed(crashed))
            raise
        else:
            reply_to.send(Ok(result))
        finally:
            # Closed on every way out (a no-op once answered), so a caller never waits on an
            # actor that was killed or stopped mid-call.
            reply_to.close()
    elif isinstance(envelope, Cast):
        await actor.handle_cast(envelope.message)
    else:
        await actor.handle_info(envelope.message)


def _exit_reason(exc: BaseException) -> ExitReason:
    if isinstance(exc, ActorKilled):
        return ExitReason(ExitKind.KILLED, exc)
    if isinstance(exc, Exception):
        return ExitReason(ExitKind.CRASHED, exc)
    return ExitReason(ExitKind.SHUTDOWN)


async def _terminate(
    actor_id: str, actor: Actor[Any, Any, Any], reason: ExitReason, grace: float
) -> None:
    # Shielded so cleanup runs even though we are being cancelled, and bounded by the same grace
    # the supervisor gives us, so it cannot turn a stop into an abandonment on its own.
    with trio.move_on_after(grace, shield=True):
        try:
            await actor.terminate(reason)
        except Exception:
            logger.exception("%s: terminate(%s) failed", actor_id, reason.kind.value)
