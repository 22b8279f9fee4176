"""The Registry: key -> actor ref, with start-on-demand that starts each key's actor exactly once.

Reads and writes are split, like Elixir's Registry over ETS:

- `lookup(key)` is a plain synchronous read of the table. That is safe because trio runs every task
  on one thread and only switches at checkpoints, and a dict read has none: a reader sees the table
  either before or after any change, never halfway.
- Every change goes through the registry actor's mailbox, one at a time: `ensure_started`,
  `register` and `unregister` are calls, and exits arrive as monitor notices. That serialisation is
  what makes 100 concurrent `ensure_started` calls for one key start exactly one actor.

The table belongs to the `Registry` object rather than to one incarnation of its actor: the actors
it names live under their own supervisors and survive a registry crash, so their entries must too.
Only the registry actor writes to it. An entry counts only while its actor's slot lives
(`ref.alive`), so a look-up never returns a dead actor even before the exit notice is processed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Never, TypeAlias, TypeVar

from parley.actors.actor import Actor
from parley.actors.errors import AlreadyRegistered
from parley.actors.mailbox import Overflow
from parley.actors.ref import ActorRef
from parley.supervision import Restart

if TYPE_CHECKING:
    from collections.abc import Callable

    from parley.actors.runtime import ActorChild, ActorSystem
    from parley.supervision import ChildSpec, DynamicSupervisor

CallT = TypeVar("CallT")
ReplyT = TypeVar("ReplyT")
CastT = TypeVar("CastT")

AnyRef: TypeAlias = ActorRef[Any, Any, Any]


@dataclass(frozen=True, slots=True)
class _EnsureStarted:
    key: str
    child: Callable[[], ActorChild[Any, Any, Any]]
    supervisor: DynamicSupervisor


@dataclass(frozen=True, slots=True)
class _Register:
    key: str
    ref: AnyRef


@dataclass(frozen=True, slots=True)
class _Unregister:
    key: str
    ref: AnyRef | None


@dataclass(frozen=True, slots=True)
class _Down:
    """Monitor notice: the actor registered under `key` has ended."""

    key: str
    ref: AnyRef


@dataclass(frozen=True, slots=True)
class _Refused:
    """A request failed for a reason that is the caller's to handle, not a registry crash."""

    error: Exception


_RegistryCall: TypeAlias = _EnsureStarted | _Register | _Unregister
_RegistryReply: TypeAlias = AnyRef | _Refused | None


class _RegistryActor(Actor[_RegistryCall, _RegistryReply, Never]):
    kind = "registry"
    # Only exit notices are ever cast (as info). Dropping one on overflow is harmless: look-ups
    # ignore dead refs, and `ensure_started` replaces them.
    overflow = Overflow.DROP

    def __init__(self, table: dict[str, AnyRef]) -> None:
        self._table = table

    async def handle_call(self, message: _RegistryCall) -> _RegistryReply:
        if isinstance(message, _EnsureStarted):
            return await self._ensure_started(message)
        if isinstance(message, _Register):
            return self._register(message)
        if message.ref is None or self._table.get(message.key) is message.ref:
            self._table.pop(message.key, None)
        return None

    async def handle_info(self, message: object) -> None:
        if isinstance(message, _Down):
            if self._table.get(message.key) is message.ref:
                del self._table[message.key]
        else:
            await super().handle_info(message)

    def describe(self) -> dict[str, object]:
        return {"entries": len(self._table)}

    async def _ensure_started(self, request: _EnsureStarted) -> _RegistryReply:
        existing = _live(self._table, request.key)
        if existing is not None:
            return existing
        # Starting waits for the new actor's init(); requests queued meanwhile, for this key or
        # another, are handled after it, which is exactly what makes the start happen once.
        try:
            child = request.child()
            await request.supervisor.start_child(child.spec)
        except Exception as exc:
            return _Refused(exc)
        self._enter(request.key, child.ref)
        return child.ref

    def _register(self, request: _Register) -> _RegistryReply:
        existing = _live(self._table, request.key)
        if existing is not None and existing is not request.ref:
            return _Refused(AlreadyRegistered(existing.id, request.key))
        if existing is None:
            self._enter(request.key, request.ref)
        return request.ref

    def _enter(self, key: str, ref: AnyRef) -> None:
        self._table[key] = ref
        ref.monitor(self.ref, _Down(key, ref))


def _live(table: dict[str, AnyRef], key: str) -> AnyRef | None:
    ref = table.get(key)
    return ref if ref is not None and ref.alive else None


class Registry:
    """Key -> actor ref for the whole node (conversations, sessions, ...).

    Run it under the root supervisor with `child_spec()` before anything that uses it.
    """

    def __init__(self, system: ActorSystem, *, name: str = "registry") -> None:
        self._table: dict[str, AnyRef] = {}
        self._child = system.child(
            _RegistryActor,
            lambda: _RegistryActor(self._table),
            capacity=system.settings.registry_mailbox,
            key=name,
            restart=Restart.PERMANENT,
            name=name,
        )
        self.ref = self._child.ref
        """The registry actor's own ref (for its statistics)."""

    def child_spec(self) -> ChildSpec:
        """The spec that runs the registry actor (permanent)."""
        return self._child.spec

    def __len__(self) -> int:
        """How many keys name a live actor."""
        return sum(1 for ref in self._table.values() if ref.alive)

    def lookup(self, key: str) -> AnyRef | None:
        """The live actor registered under `key`, or None. Synchronous: see the module docstring."""
        return _live(self._table, key)

    async def ensure_started(
        self,
        key: str,
        child: Callable[[], ActorChild[CallT, ReplyT, CastT]],
        supervisor: DynamicSupervisor,
    ) -> ActorRef[CallT, ReplyT, CastT]:
        """The actor registered under `key`, started under `supervisor` first if there is none.

        `child` builds the ref and spec (typically `lambda: system.child(...)`); it is called only
        when an actor has to be started, at most once however many callers race for the key. The
        caller is trusted to use one actor kind per key.

        Raises:
            Exception: whatever starting the child raised (its `init()` error,
                `DuplicateChildError`, `SupervisorNotRunningError`, ...); nothing is registered.
            CallTimeout, ActorUnavailable: the registry did not answer.
        """
        reply = await self.ref.call(_EnsureStarted(key, child, supervisor))
        if isinstance(reply, _Refused):
            raise reply.error
        assert reply is not None
        return reply

    async def register(self, key: str, ref: AnyRef) -> None:
        """Register an actor started elsewhere (a session); removed automatically when it ends.

        Registering the same ref again is a no-op.

        Raises:
            AlreadyRegistered: another live actor holds the key.
        """
        reply = await self.ref.call(_Register(key, ref))
        if isinstance(reply, _Refused):
            raise reply.error

    async def unregister(self, key: str, ref: AnyRef | None = None) -> None:
        """Remove the entry for `key`; if `ref` is given, only while it is the one registered."""
        await self.ref.call(_Unregister(key, ref))
