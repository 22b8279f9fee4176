"""The `Actor` base class: the callbacks an actor kind overrides, GenServer style."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from parley.actors.mailbox import Overflow

if TYPE_CHECKING:
    from parley.actors.ref import ActorRef

CallT = TypeVar("CallT")
ReplyT = TypeVar("ReplyT")
CastT = TypeVar("CastT")

logger = logging.getLogger(__name__)


class ExitKind(enum.StrEnum):
    """Why an incarnation of an actor ended."""

    NORMAL = "normal"
    """The actor called `stop()`."""
    IDLE = "idle"
    """No message arrived within its idle timeout."""
    SHUTDOWN = "shutdown"
    """Its supervisor stopped it (or everything is shutting down)."""
    KILLED = "killed"
    """`ActorRef.kill()` or a mailbox overflow under `Overflow.KILL`."""
    CRASHED = "crashed"
    """A callback raised."""


@dataclass(frozen=True, slots=True)
class ExitReason:
    """What `Actor.terminate` is told: the kind of exit and, for crashes and kills, the error."""

    kind: ExitKind
    error: Exception | None = None


class Actor(Generic[CallT, ReplyT, CastT]):
    """Base class of every actor kind; one instance per incarnation.

    The runtime builds a fresh instance through the actor's factory each time its supervisor starts
    it (state is rebuilt on restart, as in Erlang's `init`), sets `ref`, awaits `init()` (an error
    there is a startup error that comes out of the supervisor's start), then handles one message at
    a time from the mailbox until the actor stops, idles out, is killed, crashes, or is stopped by
    its supervisor; `terminate()` runs last in every case but a failed `init()`.

    Type parameters: the call messages it accepts, its replies, and the cast messages it accepts.
    Info messages are untyped: they come from outside its protocol.

    Error handling:
        An exception from any callback is a crash: the actor's incarnation ends and its supervisor
        restarts it per its restart type. If it was handling a call, that caller gets
        `ActorCrashed` (with the error as `__cause__`). Expected failures belong in replies.
    """

    kind: ClassVar[str]
    """Names the actor kind in ids, stats and logs ("conversation", "session", ...)."""
    overflow: ClassVar[Overflow] = Overflow.RAISE
    """What a cast does when this kind's mailbox is full."""
    ref: ActorRef[CallT, ReplyT, CastT]
    """This actor's own ref (stable across restarts); set by the runtime before `init()`."""

    _stop_requested: bool = False

    async def init(self) -> None:
        """Build state before serving: load from the store, subscribe, arm timers."""

    async def handle_call(self, message: CallT) -> ReplyT:
        """Answer a `call`; the return value is the caller's reply."""
        raise NotImplementedError(f"{type(self).__name__} accepts no calls")

    async def handle_cast(self, message: CastT) -> None:
        """Handle a `cast` or `send`."""
        raise NotImplementedError(f"{type(self).__name__} accepts no casts")

    async def handle_info(self, message: object) -> None:
        """Handle an `info` message; by default logged and ignored, as a GenServer does."""
        logger.warning("%s: unexpected info message %r", self.ref.id, message)

    async def terminate(self, reason: ExitReason) -> None:
        """Clean up on the way out. Runs shielded, bounded by the child's shutdown_timeout."""

    def describe(self) -> dict[str, object]:
        """JSON-able state for operators (`GET /debug/actors/{id}`); keep it small."""
        return {}

    def stop(self) -> None:
        """Return normally once the current message is handled (transient actors stay down)."""
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested
