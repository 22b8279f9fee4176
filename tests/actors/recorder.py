"""A small actor kind for the runtime tests, and helpers to run one under a supervisor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import trio

from parley.actors import Actor, ActorRef, ActorSystem, ExitReason, Overflow
from parley.supervision import DynamicSupervisor, Restart


@dataclass(frozen=True)
class Ping:
    text: str


@dataclass(frozen=True)
class Total:
    """Reply: the sum of every `Add` this incarnation handled."""


@dataclass(frozen=True)
class Fail:
    """Makes handle_call raise ValueError."""


@dataclass(frozen=True)
class Hang:
    """Makes handle_call wait forever."""


@dataclass(frozen=True)
class StopNow:
    """Makes the actor call `stop()` and reply None."""


@dataclass(frozen=True)
class Add:
    n: int


@dataclass(frozen=True)
class Wait:
    """Keeps the actor busy in handle_cast until `gate` is set."""

    gate: trio.Event


RecorderCall: TypeAlias = Ping | Total | Fail | Hang | StopNow
RecorderReply: TypeAlias = str | int | None
RecorderCast: TypeAlias = Add | Wait


@dataclass
class Journal:
    """What outlives incarnations, so tests can see across restarts."""

    inits: int = 0
    failing_inits: int = 0
    infos: list[object] = field(default_factory=list)
    exits: list[ExitReason] = field(default_factory=list)


class Recorder(Actor[RecorderCall, RecorderReply, RecorderCast]):
    kind = "recorder"
    overflow = Overflow.RAISE

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.total = 0

    async def init(self) -> None:
        self.journal.inits += 1
        if self.journal.failing_inits:
            self.journal.failing_inits -= 1
            raise RuntimeError("init failed")

    async def handle_call(self, message: RecorderCall) -> RecorderReply:
        if isinstance(message, Ping):
            return f"pong {message.text}"
        if isinstance(message, Total):
            return self.total
        if isinstance(message, Fail):
            raise ValueError("asked to fail")
        if isinstance(message, Hang):
            await trio.sleep_forever()
        self.stop()
        return None

    async def handle_cast(self, message: RecorderCast) -> None:
        if isinstance(message, Add):
            self.total += message.n
        else:
            await message.gate.wait()

    async def handle_info(self, message: object) -> None:
        self.journal.infos.append(message)

    async def terminate(self, reason: ExitReason) -> None:
        self.journal.exits.append(reason)

    def describe(self) -> dict[str, object]:
        return {"total": self.total}


class DroppingRecorder(Recorder):
    overflow = Overflow.DROP


class KilledOnOverflowRecorder(Recorder):
    overflow = Overflow.KILL


RecorderRef: TypeAlias = ActorRef[RecorderCall, RecorderReply, RecorderCast]


async def start_recorder(
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    journal: Journal,
    *,
    actor_class: type[Recorder] = Recorder,
    capacity: int = 16,
    restart: Restart = Restart.PERMANENT,
    idle_timeout: float | None = None,
    key: str | None = None,
) -> RecorderRef:
    """Start a recorder under `supervisor` and return its ref."""
    child = system.child(
        actor_class,
        lambda: actor_class(journal),
        capacity=capacity,
        key=key,
        restart=restart,
        idle_timeout=idle_timeout,
        shutdown_timeout=1.0,
    )
    started = await supervisor.start_child(child.spec)
    assert started is child.ref
    return child.ref
