"""Running actors: the actor system, the operator's directory, and actors as supervised children.

An actor runs as a supervised child: `actor_child_spec` (or `ActorSystem.child`) turns a ref and a
factory into a `ChildSpec`. Each time the supervisor starts that child, the factory builds a fresh
actor, which serves the slot's mailbox until it stops. Whether it comes back is its supervisor's
business (its restart type and strategy); the ref and mailbox stay the same throughout.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import trio

from parley.actors.actor import Actor, ExitKind, ExitReason
from parley.actors.errors import ActorCrashed, ActorKilled
from parley.actors.mailbox import Call, Cast, Envelope, Failed, Info, Ok
from parley.actors.ref import ActorRef, ActorStats
from parley.config import ActorSettings, SupervisionSettings
from parley.supervision import ChildSpec, Restart

if TYPE_CHECKING:
    from collections.abc import Callable

CallT = TypeVar("CallT")
ReplyT = TypeVar("ReplyT")
CastT = TypeVar("CastT")

logger = logging.getLogger(__name__)

_DEFAULT_SHUTDOWN = SupervisionSettings().child_shutdown_seconds


class ActorDirectory:
    """Every live actor by id: the operator's view (`/debug/actors`, the kill endpoint, metrics).

    A ref adds itself when created (or when its slot is started again) and leaves when its slot
    ends. Reads are plain synchronous look-ups, safe because trio runs every task on one thread and
    only switches tasks at checkpoints; no read here awaits.
    """

    def __init__(self) -> None:
        self._refs: dict[str, ActorRef[Any, Any, Any]] = {}

    def __len__(self) -> int:
        return len(self._refs)

    def get(self, actor_id: str) -> ActorRef[Any, Any, Any] | None:
        return self._refs.get(actor_id)

    def all(self) -> list[ActorStats]:
        """Statistics of every live actor, oldest first."""
        return [ref.statistics() for ref in self._refs.values()]

    def add(self, ref: ActorRef[Any, Any, Any]) -> None:
        self._refs[ref.id] = ref

    def discard(self, ref: ActorRef[Any, Any, Any]) -> None:
        if self._refs.get(ref.id) is ref:
            del self._refs[ref.id]


_IDLE: Final = Info("idle")
"""What the idle watch hands an actor waiting with nothing to do past its idle timeout."""


class IdleWatch:
    """Stops actors that had no message for their idle timeout: one task checks them all.

    A timer per actor (a cancel scope around every mailbox wait) cost ~6 % of the server's CPU
    on the chat path (py-spy, W2 at 10,000 deliveries/s: one scope per message per conversation)
    and a deadline per idle actor. Instead, an actor with an idle timeout notes when it starts
    to wait (`Watched.since`), and `run` looks every `period` seconds: one that has waited for
    its timeout with an empty mailbox is handed `_IDLE` (`Mailbox.interrupt`) and returns with
    `ExitKind.IDLE`. So it stops between its timeout and its timeout plus `period`. Only the
    actor's own task writes its entry and `run` only reads it, on trio's one thread.
    """

    def __init__(self, period: float) -> None:
        if not period > 0:
            raise ValueError("the idle check period must be positive")
        self.period = period
        self._watched: dict[ActorRef[Any, Any, Any], Watched] = {}

    def __len__(self) -> int:
        return len(self._watched)

    def add(self, ref: ActorRef[Any, Any, Any], timeout: float) -> Watched:
        watched = self._watched[ref] = Watched(timeout)
        return watched

    def discard(self, ref: ActorRef[Any, Any, Any]) -> None:
        self._watched.pop(ref, None)

    def stop_idle(self, now: float) -> int:
        """Hand `_IDLE` to every watched actor waiting past its timeout; returns how many."""
        stopped = 0
        for ref, watched in list(self._watched.items()):
            mailbox = ref._mailbox
            if mailbox.waiting and now - watched.since >= watched.timeout:
                stopped += mailbox.interrupt(_IDLE)
        return stopped

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check every `period` seconds, for as long as the system runs (a supervised child)."""
        task_status.started()
        while True:
            await trio.sleep(self.period)
            self.stop_idle(trio.current_time())


class Watched:
    """One actor under the idle watch: its timeout, and when it last began to wait."""

    __slots__ = ("since", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.since = trio.current_time()


@dataclass(frozen=True, slots=True)
class ActorChild(Generic[CallT, ReplyT, CastT]):
    """An actor ready to be started: its ref, and the spec its supervisor runs it with."""

    ref: ActorRef[CallT, ReplyT, CastT]
    spec: ChildSpec


class ActorSystem:
    """What every actor needs, passed explicitly (no module globals): settings and the directory.

    Composition code makes one per process (tests make one per test) and hands it to the factories
    that build refs and child specs.
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

    def create_ref(
        self,
        actor_class: type[Actor[CallT, ReplyT, CastT]],
        *,
        capacity: int,
        key: str | None = None,
    ) -> ActorRef[CallT, ReplyT, CastT]:
        """A ref (and mailbox of `capacity` messages) for an actor of `actor_class`'s kind.

        The ref is listed in the directory at once and accepts messages before the actor starts;
        they wait in the mailbox.
        """
        kind = getattr(actor_class, "kind", None)
        if not isinstance(kind, str) or not kind:
            raise TypeError(f"{actor_class.__name__} must set the class attribute `kind`")
        return ActorRef(
            actor_id=f"{kind}-{next(self._ids)}",
            kind=kind,
            key=key,
            capacity=capacity,
            overflow=actor_class.overflow,
            call_timeout=self.settings.call_timeout_seconds,
            directory=self.directory,
        )

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
        """A new ref and the child spec that runs it: `create_ref` plus `actor_child_spec`."""
        ref = self.create_ref(actor_class, capacity=capacity, key=key)
        spec = actor_child_spec(
            ref,
            factory,
            restart=restart,
            idle_timeout=idle_timeout,
            idle_watch=self.idle_watch,
            shutdown_timeout=(
                self.supervision.child_shutdown_seconds
                if shutdown_timeout is None
                else shutdown_timeout
            ),
            name=name,
        )
        return ActorChild(ref, spec)


def actor_child_spec(
    ref: ActorRef[CallT, ReplyT, CastT],
    factory: Callable[[], Actor[CallT, ReplyT, CastT]],
    *,
    restart: Restart = Restart.PERMANENT,
    idle_timeout: float | None = None,
    idle_watch: IdleWatch | None = None,
    shutdown_timeout: float = _DEFAULT_SHUTDOWN,
    name: str | None = None,
) -> ChildSpec:
    """The spec that runs the actor behind `ref` under a supervisor.

    Args:
        ref: the actor's stable ref; its mailbox survives restarts.
        factory: builds a fresh actor for every incarnation.
        restart: PERMANENT (always back), TRANSIENT (back after a crash or kill, not after `stop()`
            or an idle exit), TEMPORARY (never back; sessions).
        idle_timeout: seconds without a message after which the actor returns normally;
            `idle_watch` (the system's) notices it.
        shutdown_timeout: grace for `terminate()` when its supervisor stops it.
        name: the child's name under its supervisor; defaults to the actor id, which is unique.

    The child reports `started(ref)` once `init()` has returned; an `init()` error is a startup
    error. When the slot ends for good, queued calls fail with `ActorUnavailable`, the ref leaves
    the directory and its monitors are told.
    """
    idle: tuple[IdleWatch, float] | None = None
    if idle_timeout is not None:
        if idle_watch is None:
            raise ValueError("an idle timeout needs the actor system's idle watch")
        idle = (idle_watch, idle_timeout)
    return ChildSpec(
        name=name or ref.id,
        start=functools.partial(_run_actor, ref, factory, idle, shutdown_timeout),
        restart=restart,
        shutdown_timeout=shutdown_timeout,
        describe=ref.describe,
        on_terminated=ref._retire,
    )


async def _run_actor(
    ref: ActorRef[CallT, ReplyT, CastT],
    factory: Callable[[], Actor[CallT, ReplyT, CastT]],
    idle: tuple[IdleWatch, float] | None,
    grace: float,
    *,
    task_status: trio.TaskStatus[ActorRef[CallT, ReplyT, CastT]],
) -> None:
    """One incarnation: build, init, report started, serve the mailbox, terminate."""
    ref._open()
    actor = factory()
    actor.ref = ref
    running = ref._begin(actor)
    initialized = False
    try:
        with running.scope:
            await actor.init()
            initialized = True
            task_status.started(ref)
            reason = await _serve(ref, actor, idle)
        if running.scope.cancelled_caught:
            # Only kill() cancels this scope; a supervisor's stop arrives through an outer scope
            # and is not caught here.
            raise ActorKilled(ref.id, running.kill_reason or "killed")
    except BaseException as exc:
        ref._end(running, exc if isinstance(exc, Exception) else None)
        if initialized:
            await _terminate(ref, actor, _exit_reason(exc), grace)
        raise
    ref._end(running, None)
    await _terminate(ref, actor, reason, grace)


async def _serve(
    ref: ActorRef[CallT, ReplyT, CastT],
    actor: Actor[CallT, ReplyT, CastT],
    idle: tuple[IdleWatch, float] | None,
) -> ExitReason:
    mailbox = ref._mailbox
    if idle is None:
        while not actor.stop_requested:
            await _dispatch(ref, actor, await mailbox.get())
            ref._count_processed()
        return ExitReason(ExitKind.NORMAL)
    idle_watch, timeout = idle
    watched = idle_watch.add(ref, timeout)
    try:
        while not actor.stop_requested:
            if not mailbox.depth:
                watched.since = trio.current_time()
            envelope = await mailbox.get()
            if envelope is _IDLE:
                return ExitReason(ExitKind.IDLE)
            await _dispatch(ref, actor, envelope)
            ref._count_processed()
        return ExitReason(ExitKind.NORMAL)
    finally:
        idle_watch.discard(ref)


async def _dispatch(
    ref: ActorRef[CallT, ReplyT, CastT],
    actor: Actor[CallT, ReplyT, CastT],
    envelope: Envelope[CallT, ReplyT, CastT],
) -> None:
    if isinstance(envelope, Call):
        reply_to = envelope.reply_to
        try:
            result = await actor.handle_call(envelope.message)
        except Exception as exc:
            crashed = ActorCrashed(ref.id, f"crashed handling {type(envelope.message).__name__}")
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
    ref: ActorRef[Any, Any, Any], actor: Actor[Any, Any, Any], reason: ExitReason, grace: float
) -> None:
    # Shielded so cleanup runs even though we are being cancelled, and bounded by the same grace
    # the supervisor gives us, so it cannot turn a stop into an abandonment on its own.
    with trio.move_on_after(grace, shield=True):
        try:
            await actor.terminate(reason)
        except Exception:
            logger.exception("%s: terminate(%s) failed", ref.id, reason.kind.value)
