"""Writer throughput: messages persisted per second through the whole conversation-actor path.

Runs the real runtime (store, writer, registry, conversation actors) on an embedded PostgreSQL (or
DATABASE_URL), seeds users and conversations, then has concurrent senders push messages through
`Chat.send` (membership check, client-id de-dup, group commit, ack after commit, publish). The same
load is then sent with batching off (`batch_max_rows=1`: one insert and one commit per message) for
comparison, in the same run. Prints one figure line per mode plus the batch-size histogram.

With `--rate`, it instead sends at that many messages per second for `--seconds` (open loop, one
task per message, as sockets do) and prints the acknowledgement latency and this process's CPU per
message (both threads: trio and asyncpg's), the figures the group commit trades against each other.

    .venv/bin/python bench/writer.py [--messages 20000] [--conversations 100] [--senders 200]
    .venv/bin/python bench/writer.py --rate 3000 [--seconds 10] [--conversations 500]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import resource
import tempfile
import time
import uuid
from collections.abc import AsyncIterator

import trio

from parley.actors.tree import Runtime
from parley.config import Settings, load_settings
from parley.service import database_url, open_database
from parley.store.conversations import ConversationStore
from parley.store.users import UserStore


async def seed(runtime: Runtime, conversations: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Create one group of two users per conversation; returns (conversation, sender) pairs."""
    users, store = UserStore(runtime.database), ConversationStore(runtime.database)
    tag = uuid.uuid4().hex[:8]
    pairs = []
    for n in range(conversations):
        a = await users.create(
            email=f"a{n}-{tag}@b.test", username=f"a{n}_{tag}", password_hash="x"
        )
        b = await users.create(
            email=f"b{n}-{tag}@b.test", username=f"b{n}_{tag}", password_hash="x"
        )
        conversation = await store.create_group(a.id, f"bench {n}", [b.id])
        pairs.append((conversation.id, a.id))
    return pairs


@contextlib.asynccontextmanager
async def seeded_runtime(
    settings: Settings, dsn: str, conversations: int
) -> AsyncIterator[tuple[Runtime, list[tuple[uuid.UUID, uuid.UUID]]]]:
    """The running tree with `conversations` seeded pairs; shut down in order on the way out."""
    runtime = Runtime(settings, open_database(settings, dsn))
    root = runtime.build_root([])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        yield runtime, await seed(runtime, conversations)
        await root.shutdown()
        nursery.cancel_scope.cancel()


async def measure(
    settings: Settings, dsn: str, messages: int, conversations: int, senders: int
) -> tuple[float, dict[str, int], int]:
    async with seeded_runtime(settings, dsn, conversations) as (runtime, pairs):
        per_sender = messages // senders
        started = time.perf_counter()

        async def sender(index: int) -> None:
            conversation_id, user_id = pairs[index % len(pairs)]
            for n in range(per_sender):
                await runtime.chat.send(conversation_id, user_id, f"message {n}", f"{index}-{n}")

        async with trio.open_nursery() as senders_nursery:
            for index in range(senders):
                senders_nursery.start_soon(sender, index)
        elapsed = time.perf_counter() - started
        stats = runtime.writer.statistics()
        stored = await runtime.database.fetchval("SELECT count(*) FROM messages")
    print(
        f"  {stats.batches} batches,"
        f" {stats.commit_seconds_total:.2f}s committing of {elapsed:.2f}s,"
        f" mean commit {1000 * stats.commit_seconds_total / max(stats.batches, 1):.1f} ms"
    )
    return per_sender * senders / elapsed, stats.batch_sizes, int(stored)


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def open_loop(
    settings: Settings, dsn: str, rate: float, seconds: float, conversations: int
) -> None:
    """Send `rate` messages per second for `seconds`, each in its own task, and print the ack
    latency percentiles and the CPU this process spent per message."""
    async with seeded_runtime(settings, dsn, conversations) as (runtime, pairs):
        # Start every conversation actor first, as a warm-up would.
        for conversation_id, user_id in pairs:
            await runtime.chat.send(conversation_id, user_id, "warm-up", None)
        latencies: list[float] = []

        async def send_one(n: int) -> None:
            conversation_id, user_id = pairs[n % len(pairs)]
            started = time.perf_counter()
            await runtime.chat.send(conversation_id, user_id, f"message {n}", f"open-{n}")
            latencies.append(time.perf_counter() - started)

        total = int(rate * seconds)
        warm = runtime.writer.statistics()
        cpu_started, began = process_cpu_seconds(), trio.current_time()
        async with trio.open_nursery() as senders:
            for n in range(total):
                await trio.sleep_until(began + n / rate)
                senders.start_soon(send_one, n)
        cpu = process_cpu_seconds() - cpu_started
        stats = runtime.writer.statistics()
    latencies.sort()

    def ms(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    print(
        f"W5 writer, open loop {rate:,.0f} msg/s for {seconds:g} s: ack p50 {ms(0.5):.1f}"
        f" p99 {ms(0.99):.1f} max {ms(1.0):.1f} ms;"
        f" process CPU {1e6 * cpu / total:.0f} us/message ({100 * cpu / seconds:.0f}% of a core);"
        f" {stats.batches - warm.batches} batches"
        f" of {(stats.messages - warm.messages) / max(stats.batches - warm.batches, 1):.1f}"
        " messages on average"
    )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(overrides={"server": {"data_dir": data_dir, "env": "test"}})
        async with database_url(settings) as dsn:
            if args.rate:
                await open_loop(settings, dsn, args.rate, args.seconds, args.conversations)
                return
            total = args.messages - args.messages % args.senders
            batched = await measure(settings, dsn, total, args.conversations, args.senders)
            unbatched_settings = dataclasses.replace(
                settings, writer=dataclasses.replace(settings.writer, batch_max_rows=1)
            )
            unbatched = await measure(
                unbatched_settings, dsn, total // 4, args.conversations, args.senders
            )
    print(f"W5 writer, batched:   {batched[0]:9.0f} messages/s persisted  batch sizes {batched[1]}")
    print(f"W5 writer, unbatched: {unbatched[0]:9.0f} messages/s persisted  (batch_max_rows=1)")
    print(f"W5 batching speed-up: {batched[0] / unbatched[0]:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: messages per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    trio.run(main, parser.parse_args())
