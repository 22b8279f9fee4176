"""`ActorSlot`: the runtime's side of one actor, what outlives its incarnations.

A slot is made once per actor (`ActorSystem.child`) and lasts until its supervisor ends it for
good. It owns the mailbox, the current incarnation (what `kill` cancels, what `describe` shows),
the counters behind `statistics()` and the monitors to tell when it ends. The runtime
(`runtime.py`) drives it; everyone else holds the `ActorRef` (`ref.py`) made over it, so the public
handle has no method that starts, ends or counts an incarnation. Like the supervisor's child slot
(`parley.supervision._core`), it knows nothing of the actor's class: to the slot an incarnation is
a cancel scope and a describe function.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, TypeVar

import trio

from parley.actors.errors import ActorError
from parley.actors.mailbox import Call, Cast, Envelope, Mailbox

if TYPE_CHECKING:
    from collections.abc import Callable

CallT = TypeVar("CallT")
ReplyT = TypeVar("ReplyT")
CastT = TypeVar("CastT")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActorStats:
    """A snapshot of one actor, for `/debug/actors` and `/metrics`."""

    id: str
    """Unique within the actor system and stable across restarts (`<kind>-<n>`)."""
    kind: str
    key: str | None
    running: bool
    """An incarnation is up (False while restarting, or after the slot ended)."""
    mailbox_depth: int
    mailbox_capacity: int
    processed: int
    """Messages handled to completion, over all incarnations."""
    dropped: int
    """Casts that found the mailbox full, whatever the overflow policy did about it."""
    restarts: int
    started_at: datetime | None
    """Wall-clock time (UTC) the current incarnation started."""
    last_error: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "key": self.key,
            "running": self.running,
            "mailbox_depth": self.mailbox_depth,
            "mailbox_capacity": self.mailbox_capacity,
            "processed": self.processed,
            "dropped": self.dropped,
            "restarts": self.restarts,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "last_error": self.last_error,
        }


class Incarnation:
    """One run of the actor, from its factory to its exit: what `kill` cancels."""

    __slots__ = ("describe", "kill_reason", "scope")

    def __init__(self, describe: Callable[[], dict[str, object]]) -> None:
        self.describe = describe
        """The running actor's own `describe()`."""
        self.scope = trio.CancelScope()
        """Covers the incarnation's whole run; only `ActorSlot.kill` cancels it."""
        self.kill_reason: str | None = None


class ActorSlot(Generic[CallT, ReplyT, CastT]):
    """One actor's place in the runtime, valid across restarts (see the module docstring).

    `processed` and `dropped` are counted by the runtime's loop and the ref's casts as plain
    attribute increments, one per message, rather than through a method call.
    """

    __slots__ = (
        "_errors_kept",
        "_monitors",
        "dropped",
        "errors",
        "id",
        "idle_timeout",
        "incarnation",
        "incarnations",
        "key",
        "kind",
        "last_error",
        "mailbox",
        "processed",
        "started_at",
    )

    def __init__(
        self,
        actor_id: str,
        kind: str,
        key: str | None,
        capacity: int,
        *,
        errors_kept: int = 0,
        idle_timeout: float | None = None,
    ) -> None:
        self.id = actor_id
        self.kind = kind
        self.key = key
        self.mailbox: Mailbox[Envelope[CallT, ReplyT, CastT]] = Mailbox(capacity)
        """Stays the same object for the slot's whole life (closed when it ends, reopened if it
        is started again), so refs may hold it directly."""
        self.incarnation: Incarnation | None = None
        """The running incarnation; None while the actor is down (restarting, or ended)."""
        self.incarnations = 0
        self.processed = 0
        self.dropped = 0
        self.started_at: datetime | None = None
        self.last_error: str | None = None
        self._errors_kept = errors_kept
        self.errors: deque[tuple[datetime, str]] | tuple[()] = ()
        """The last `errors_kept` errors (time, repr), oldest first, for the operator's view;
        the deque is made at the first error (an empty one costs 0.7 KB per idle actor)."""
        self.idle_timeout = idle_timeout
        """Seconds without a message after which the actor stops (None: it never idles out)."""
        self._monitors: list[tuple[str, Callable[[object], bool], object]] | None = None
        """Made at the first `monitor` (most actors have none)."""

    def __repr__(self) -> str:
        return f"<ActorSlot {self.id}>"

    @property
    def alive(self) -> bool:
        """The slot exists: its mailbox takes messages (handled now or after a restart)."""
        return not self.mailbox.closed

    # -- the incarnation's life, driven by the runtime -------------------------------------

    def reopen(self) -> bool:
        """Take messages again if the slot had ended (a supervisor starts it once more); True
        if it had."""
        if not self.mailbox.closed:
            return False
        self.mailbox.reopen()
        return True

    def begin(self, describe: Callable[[], dict[str, object]]) -> Incarnation:
        """A new incarnation is starting (its actor is built; `init()` comes next)."""
        incarnation = self.incarnation = Incarnation(describe)
        self.incarnations += 1
        self.started_at = datetime.now(UTC)
        return incarnation

    def end(self, incarnation: Incarnation, error: Exception | None) -> None:
        """`incarnation` exited, with `error` if it crashed or was killed."""
        if self.incarnation is incarnation:
            self.incarnation = None
        if error is not None:
            self.last_error = repr(error)
            errors = self.errors
            if not isinstance(errors, deque):
                errors = self.errors = deque(maxlen=self._errors_kept)
            errors.append((datetime.now(UTC), self.last_error))

    def kill(self, reason: str) -> None:
        """Cancel the running incarnation, which then exits as killed; a no-op while down."""
        incarnation = self.incarnation
        if incarnation is None:
            return
        if incarnation.kill_reason is None:
            incarnation.kill_reason = reason
        incarnation.scope.cancel()

    def retire(self) -> None:
        """The slot ended for good: close the mailbox, fail the calls still queued in it, and
        tell the monitors."""
        leftovers = self.mailbox.close()
        for envelope in leftovers:
            if isinstance(envelope, Call):
                # Closing the reply slot tells the caller the actor went down (ActorUnavailable).
                envelope.reply_to.close()
        if leftovers:
            logger.info("%s: ended with %d message(s) unhandled", self.id, len(leftovers))
        monitors, self._monitors = self._monitors or (), None
        for watcher, notify, message in monitors:
            self._notify(watcher, notify, message)

    # -- what refs ask of it ------------------------------------------------------------------

    def monitor(self, watcher: str, notify: Callable[[object], bool], message: object) -> None:
        """Have `notify(message)` called once the slot ends (at once if it has): `watcher` names
        who is told, for the log line if `notify` returns False or raises `ActorError`."""
        if self.alive:
            if self._monitors is None:
                self._monitors = []
            self._monitors.append((watcher, notify, message))
        else:
            self._notify(watcher, notify, message)

    def statistics(self) -> ActorStats:
        return ActorStats(
            id=self.id,
            kind=self.kind,
            key=self.key,
            running=self.incarnation is not None,
            mailbox_depth=self.mailbox.depth,
            mailbox_capacity=self.mailbox.capacity,
            processed=self.processed,
            dropped=self.dropped,
            restarts=max(self.incarnations - 1, 0),
            started_at=self.started_at,
            last_error=self.last_error,
        )

    def queued(self, limit: int) -> list[dict[str, str]]:
        """The first `limit` queued messages by envelope and message type, never their contents
        (they may carry users' messages)."""
        return [
            {"envelope": _envelope_kind(envelope), "message": type(envelope.message).__name__}
            for envelope in self.mailbox.peek(limit)
        ]

    def describe(self) -> dict[str, object]:
        """Statistics plus the running incarnation's own `describe()`, as JSON-able data."""
        description = self.statistics().as_dict()
        description["recent_errors"] = [
            {"at": at.isoformat(), "error": error} for at, error in self.errors
        ]
        incarnation = self.incarnation
        if incarnation is not None:
            try:
                description["state"] = incarnation.describe()
            except Exception as exc:
                # An operator's look at one actor must not fail because its describe() is broken.
                description["state"] = {"describe_error": repr(exc)}
        return description

    def _notify(self, watcher: str, notify: Callable[[object], bool], message: object) -> None:
        try:
            if notify(message):
                return
            problem = "its mailbox is full"
        except ActorError as exc:
            problem = str(exc)
        logger.warning("%s: could not tell %s that it ended: %s", self.id, watcher, problem)


def _envelope_kind(envelope: object) -> str:
    if isinstance(envelope, Call):
        return "call"
    return "cast" if isinstance(envelope, Cast) else "info"
