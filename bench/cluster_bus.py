"""The cluster bus on its own: one publishing node, one subscribing node, each a process running
Parley's `ClusterPubSub` over a real engine (no HTTP, no sockets), as issue 18's table measured.

    .venv/bin/python bench/cluster_bus.py --adapter postgres      # embedded PostgreSQL
    .venv/bin/python bench/cluster_bus.py --adapter redis --redis-url redis://127.0.0.1:6379/0

The publisher broadcasts `--messages` ordered ~200-byte messages over `--conversations`
conversations, `--burst` per scheduler turn (so what the flusher batches is what a busy node
queues, not a chosen batch size); the subscriber has one local subscriber per conversation topic
and counts deliveries. Printed: deliveries/s at the subscriber, envelopes per bus message, the CPU
(user + system) each node and the engine spent per delivery, and cross-node latency p50/p99 (the
send time travels in the payload; both processes read the same clock).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import trio

from parley.actors.realtime.bus import open_redis_bus
from parley.actors.realtime.cluster import ClusterPubSub
from parley.actors.realtime.presence import Presence
from parley.actors.realtime.pubsub import Broadcast, LocalPubSub
from parley.config import ClusterSettings
from parley.store import Database
from parley.store.embedded import start_embedded, stop_embedded
from parley.store.notify import open_notify_bus


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[float] = []
        self.done = trio.Event()
        self.expected = 0

    def deliver(self, broadcast: Broadcast) -> None:
        self.count += 1
        if self.count % 50 == 0:
            self.latencies.append(time.time() - broadcast.payload["sent_at"])
        if self.count >= self.expected:
            self.done.set()


def cluster(args: argparse.Namespace, name: str) -> tuple[ClusterPubSub, Database | None]:
    settings = ClusterSettings(adapter=args.adapter, node_name=name, heartbeat_seconds=0.5)
    local = LocalPubSub()
    presence = Presence(local)
    database = None
    opener: partial[AbstractAsyncContextManager[Any]]
    if args.adapter == "postgres":
        database = Database(args.dsn, min_size=1, max_size=1, command_timeout=10)
        opener = partial(open_notify_bus, database, settings.channel, name)
    else:
        opener = partial(open_redis_bus, args.redis_url, settings.channel)

    async def no_gaps(stream: str, after: int, limit: int) -> list[tuple[int, Any]]:
        return []

    node = ClusterPubSub(
        local, presence, settings, node_name=name, open_bus=opener, fill_gap=no_gaps
    )
    return node, database


async def run_node(args: argparse.Namespace) -> None:
    node, database = cluster(args, args.role)
    if database is not None:
        await database.connect()
    counter = Counter()
    counter.expected = args.messages
    topics = [f"conversation:{i}" for i in range(args.conversations)]
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        with trio.fail_after(30):
            while node.state != "up" or not node.describe()["nodes"]:  # noqa: ASYNC110
                await trio.sleep(0.05)
        if args.role == "sub":
            for topic in topics:
                node.subscribe(topic, counter)
            print("ready", flush=True)
            first = trio.Event()

            async def first_seen() -> None:
                while counter.count == 0:  # noqa: ASYNC110
                    await trio.sleep(0.001)
                first.set()

            nursery.start_soon(first_seen)
            await first.wait()
            started, cpu0 = time.perf_counter(), time.process_time()
            with trio.move_on_after(120):
                await counter.done.wait()
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu0
            latencies = sorted(counter.latencies)
            print(
                json.dumps(
                    {
                        "delivered": counter.count,
                        "per_second": counter.count / elapsed,
                        "cpu_us_per_delivery": cpu / max(counter.count, 1) * 1e6,
                        "latency_p50_ms": statistics.median(latencies) * 1000,
                        "latency_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
                        "batches_in": node.counters["batches_in"],
                        "envelopes_in": node.counters["envelopes_in"],
                    }
                ),
                flush=True,
            )
        else:
            await trio.to_thread.run_sync(sys.stdin.readline)  # "go"
            cpu0 = time.process_time()
            payload_body = "x" * 120
            for seq in range(1, args.messages + 1):
                topic_index = seq % args.conversations
                node.publish_ordered(
                    topics[topic_index],
                    "new_msg",
                    {"body": payload_body, "seq": seq, "sent_at": time.time()},
                    str(topic_index),
                    seq // args.conversations + 1,
                )
                if seq % args.burst == 0:
                    await trio.lowlevel.checkpoint()
                    while len(node._queue) > args.burst * 4:  # noqa: ASYNC110 (bench)
                        await trio.sleep(0.0005)
            while node._queue:  # noqa: ASYNC110 (bench: until flushed)
                await trio.sleep(0.001)
            cpu = time.process_time() - cpu0
            print(
                json.dumps(
                    {
                        "cpu_us_per_message": cpu / args.messages * 1e6,
                        "batches_out": node.counters["batches_out"],
                        "envelopes_out": node.counters["envelopes_out"],
                    }
                ),
                flush=True,
            )
            await trio.to_thread.run_sync(sys.stdin.readline)  # "stop"
        nursery.cancel_scope.cancel()
    if database is not None:
        await database.close()


def engine_cpu(args: argparse.Namespace) -> float:
    names = {"postgres"} if args.adapter == "postgres" else {"redis-server"}
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in names:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
    return total


def drive(args: argparse.Namespace) -> dict[str, Any]:
    common = [
        sys.executable,
        __file__,
        "--adapter",
        args.adapter,
        "--messages",
        str(args.messages),
        "--conversations",
        str(args.conversations),
        "--burst",
        str(args.burst),
        "--redis-url",
        args.redis_url,
    ]
    env = {**os.environ, "BENCH_DSN": args.dsn or ""}
    sub = subprocess.Popen(
        [*common, "--role", "sub"],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
        env=env,
    )
    pub = subprocess.Popen(
        [*common, "--role", "pub"],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert sub.stdout is not None and pub.stdin is not None and pub.stdout is not None
    assert sub.stdout.readline().strip() == "ready"
    engine0 = engine_cpu(args)
    pub.stdin.write("go\n")
    pub.stdin.flush()
    published = json.loads(pub.stdout.readline())
    received = json.loads(sub.stdout.readline())
    engine = engine_cpu(args) - engine0
    pub.stdin.write("stop\n")
    pub.stdin.flush()
    pub.wait(30)
    sub.wait(30)
    return {
        **received,
        **published,
        "envelopes_per_bus_message": published["envelopes_out"] / max(published["batches_out"], 1),
        "engine_cpu_us_per_delivery": engine / max(received["delivered"], 1) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", choices=["postgres", "redis"], default="postgres")
    parser.add_argument("--role", choices=["pub", "sub"])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--burst", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    args.dsn = os.environ.get("BENCH_DSN") or None
    if args.role is not None:
        trio.run(run_node, args)
        return
    server = None
    if args.adapter == "postgres" and args.dsn is None:
        args.dsn, server = start_embedded(Path(tempfile.mkdtemp(prefix="bench-bus-")) / "pgdata")
    try:
        runs = [drive(args) for _ in range(args.runs)]
    finally:
        if server is not None:
            stop_embedded(server)
    keys = runs[0].keys()
    medians = {key: statistics.median(run[key] for run in runs) for key in keys}
    print(json.dumps({"adapter": args.adapter, "burst": args.burst, "median": medians}, indent=1))


if __name__ == "__main__":
    main()
