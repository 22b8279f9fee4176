"""The actor runtime's per-message cost on its own: no sockets, no database, one process.

Times the paths every chat message takes through the runtime, in nanoseconds of this process's CPU
per message, best of `--repeat` runs (CPU time and the best run, so that other load on the machine
inflates a figure less than it would wall time or a mean):

- `call_soon`: a socket push's way into a conversation actor (`ActorRef.call_soon`, the mailbox,
  the reply callback), in bursts of `--burst` messages, as a conversation receives them;
- `cast`: `ActorRef.cast` bursts, handled by the actor;
- `call`: one awaited `ActorRef.call` after the other (the caller parks on its reply slot, the
  actor parks on its empty mailbox, once each per message);
- `handoff`: a bare `Mailbox` handing each message to its parked reader (a scheduler round each);
- `queued`: a bare `Mailbox` filled by `put_nowait` and emptied by `get` without ever parking.

Uses only the runtime's public API, so that two commits can be timed back to back:

    .venv/bin/python bench/actor_path.py [--messages 100000] [--repeat 7] [--burst 32]
    PYTHONPATH=/tmp/other-commit/src .venv/bin/python bench/actor_path.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable

import trio
import trio.testing

from parley.actors import Actor, ActorSystem, Overflow
from parley.actors.mailbox import Mailbox
from parley.config import ActorSettings
from parley.supervision import DynamicSupervisor


class Echo(Actor[int, int, int]):
    kind = "echo"
    overflow = Overflow.RAISE

    def __init__(self) -> None:
        self.casts = 0
        self.drained: trio.Event | None = None
        self.expected = 0

    async def handle_call(self, message: int) -> int:
        return message

    async def handle_cast(self, message: int) -> None:
        self.casts += 1
        if self.casts == self.expected and self.drained is not None:
            self.drained.set()


async def call_soon_path(system: ActorSystem, sup: DynamicSupervisor, n: int, burst: int) -> int:
    child = system.child(Echo, Echo, capacity=burst)
    await sup.start_child(child.spec)
    ref = child.ref
    answered = 0
    done = trio.Event()

    def replied(_: object) -> None:
        nonlocal answered
        answered += 1
        if answered == target:
            done.set()

    target = 0
    start = time.process_time_ns()
    for _ in range(n // burst):
        target += burst
        done = trio.Event()
        for i in range(burst):
            ref.call_soon(i, replied)
        await done.wait()
    elapsed = time.process_time_ns() - start
    await sup.terminate_child(child.spec.name)
    return elapsed


async def cast_path(system: ActorSystem, sup: DynamicSupervisor, n: int, burst: int) -> int:
    echo = Echo()
    child = system.child(Echo, lambda: echo, capacity=burst)
    await sup.start_child(child.spec)
    ref = child.ref
    start = time.process_time_ns()
    for _ in range(n // burst):
        echo.expected += burst
        echo.drained = trio.Event()
        for i in range(burst):
            ref.cast(i)
        await echo.drained.wait()
    elapsed = time.process_time_ns() - start
    await sup.terminate_child(child.spec.name)
    return elapsed


async def call_path(system: ActorSystem, sup: DynamicSupervisor, n: int, burst: int) -> int:
    child = system.child(Echo, Echo, capacity=burst)
    await sup.start_child(child.spec)
    ref = child.ref
    start = time.process_time_ns()
    for i in range(n):
        await ref.call(i)
    elapsed = time.process_time_ns() - start
    await sup.terminate_child(child.spec.name)
    return elapsed


async def handoff_path(system: ActorSystem, sup: DynamicSupervisor, n: int, burst: int) -> int:
    mailbox = Mailbox[int](burst)
    taken = trio.Event()

    async def reader() -> None:
        for _ in range(n):
            await mailbox.get()
        taken.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        start = time.process_time_ns()
        for i in range(n):
            mailbox.put_nowait(i)  # the reader is parked: handed over, then it parks again
            await trio.lowlevel.cancel_shielded_checkpoint()
        await taken.wait()
        return time.process_time_ns() - start


async def queued_path(system: ActorSystem, sup: DynamicSupervisor, n: int, burst: int) -> int:
    mailbox = Mailbox[int](burst)
    start = time.process_time_ns()
    for _ in range(n // burst):
        for i in range(burst):
            mailbox.put_nowait(i)
        for _ in range(burst):
            await mailbox.get()
    return time.process_time_ns() - start


Path = Callable[[ActorSystem, DynamicSupervisor, int, int], Awaitable[int]]
PATHS: dict[str, Path] = {
    "call_soon": call_soon_path,
    "cast": cast_path,
    "call": call_path,
    "handoff": handoff_path,
    "queued": queued_path,
}


async def main(messages: int, repeat: int, burst: int) -> None:
    system = ActorSystem(ActorSettings(call_timeout_seconds=60.0))
    sup = DynamicSupervisor("bench", max_restarts=0, window_seconds=1.0, backoff_seconds=0.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        best: dict[str, float] = {}
        for _ in range(repeat):  # interleaved, so a slow spell hits every path alike
            for name, path in PATHS.items():
                per_message = await path(system, sup, messages, burst) / messages
                best[name] = min(best.get(name, per_message), per_message)
        for name, ns in best.items():
            print(f"{name:10s} {ns:8.0f} ns/message")
        await sup.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--burst", type=int, default=32)
    args = parser.parse_args()
    trio.run(main, args.messages, args.repeat, args.burst)
