"""Cluster scale-out (issue 18): room fan-out on 1 node and on 2 nodes, each node capped with a
CPU quota (cgroup v1 `cpu.cfs_quota_us`), the load generator and PostgreSQL (or Redis) outside
the caps, interleaved runs (1, 2, 1, 2, ...), medians.

    .venv/bin/python bench/cluster_scaleout.py --adapter postgres --pairs 2
    .venv/bin/python bench/cluster_scaleout.py --adapter redis --redis-url redis://127.0.0.1:6379/0

Rooms of `--members` (phoenix.js clients from bench/node/worker.mjs, one Node worker per node);
on 2 nodes every room's members alternate between the nodes, so half of every message's
recipients are on the other node. Each run steps the delivery rate up until p99 >= 100 ms or any
loss; D is the highest delivery rate that held. Printed per run and as medians: D(1), D(2), the
efficiency D(2) / (2 x D(1)), node and engine CPU per delivery, and p99 at the last step held.
Needs root (it makes cgroups under /sys/fs/cgroup/cpu) and Node.js with bench/node installed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
import trio

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as suite  # noqa: E402  (bench/run.py: the workers, seeding and steps)
from parley.store.embedded import start_embedded, stop_embedded  # noqa: E402

CGROUP = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000


def cap(pid: int, name: str, cores: float) -> Path:
    group = CGROUP / name
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(int(PERIOD_US * cores)))
    (group / "cgroup.procs").write_text(str(pid))
    return group


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for member in [process, *process.children(recursive=True)]:
                times = member.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def engine_pids(args: argparse.Namespace, pgdata: Path) -> list[int]:
    if args.adapter == "redis":
        return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]
    found = []
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] == "postgres" and Path(process.cwd()) == pgdata:
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


@asynccontextmanager
async def nodes(args: argparse.Namespace, count: int, dsn: str, run_dir: Path) -> Any:
    targets = []
    try:
        for index in range(count):
            port = suite.free_port()
            log = run_dir / f"node{index}-{port}.log"
            env = {
                **os.environ,
                **suite.COMMON_ENV,
                **suite.CHEAP_ARGON2,
                "PYTHONUNBUFFERED": "1",
                "PORT": str(port),
                "DATABASE_URL": dsn,
                "PARLEY_ENV": "dev",
                "PARLEY_DATA_DIR": str(run_dir / "data"),
                "PARLEY_CLUSTER_ADAPTER": args.adapter if count > 1 else "none",
                "PARLEY_CLUSTER_NODE_NAME": f"node{index}",
                "PARLEY_CLUSTER_REDIS_URL": args.redis_url,
            }
            with log.open("wb") as out:
                proc = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for below
                    [str(suite.ROOT / ".venv" / "bin" / "parley"), "serve"],
                    cwd=suite.ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    preexec_fn=suite.raise_nofile,
                    start_new_session=True,
                )
            cap(proc.pid, f"parley-bench-node{index}", args.node_cores)
            target = suite.Target("parley", f"node{index}", proc, port, None, log)
            targets.append(target)
            await suite.wait_ready(target)
        yield targets
    finally:
        with trio.CancelScope(shield=True):
            for target in targets:
                await suite.stop(target)


async def one_run(args: argparse.Namespace, count: int, dsn: str, pgdata: Path) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"scaleout-{count}-"))
    async with nodes(args, count, dsn, run_dir) as targets:
        await trio.sleep(2)  # the nodes hear each other
        seeded = await suite.seed_rooms(targets[0], args.rooms, args.members)
        specs = suite.room_specs(seeded, user_topic=False)
        per_node: list[list[dict[str, Any]]] = [[] for _ in targets]
        for index, spec in enumerate(specs):
            per_node[index % len(targets)].append(spec)  # members alternate within a room
        async with suite.workers(len(targets), run_dir) as pool:
            commands = [
                {
                    "cmd": "open",
                    "driver": "phoenix",
                    "url": target.socket_url,
                    "conns": share,
                    "rate": 500 * len(share) / len(specs),
                    "heartbeat_ms": 30_000,
                }
                for target, share in zip(targets, per_node, strict=True)
            ]
            await suite.call_all(pool, commands, limit_s=180)
            await suite.run_step(pool, targets[0], "warm", 100, 2, args.members, 500)
            held: dict[str, Any] | None = None
            for deliveries in args.steps:
                await trio.sleep(1)
                node_pids = [t.proc.pid for t in targets]
                node0, engine0 = cpu_seconds(node_pids), cpu_seconds(engine_pids(args, pgdata))
                step = await suite.run_step(
                    pool,
                    targets[0],
                    f"d{deliveries}",
                    deliveries / args.members,
                    args.step_seconds,
                    args.members,
                    1500,
                )
                node_cpu = cpu_seconds(node_pids) - node0
                engine_cpu = cpu_seconds(engine_pids(args, pgdata)) - engine0
                got = max(step["deliveries"], 1)
                result = {
                    "deliveries_per_s": step["deliveries_per_s"],
                    "p99_ms": step["latency"]["p99_ms"],
                    "loss_pct": step["loss_pct"],
                    "unacked": step["sent"] - step["acked"],
                    "ack_errors": step["ack_errors"],
                    "node_cpu_us_per_delivery": round(node_cpu / got * 1e6, 1),
                    "engine_cpu_us_per_delivery": round(engine_cpu / got * 1e6, 1),
                }
                print(f"  {count} node(s) target {deliveries}/s: {json.dumps(result)}", flush=True)
                generator_bound = step["achieved_msgs_per_s"] < 0.9 * deliveries / args.members
                if step["latency"]["p99_ms"] >= 100 or step["loss_pct"] > 0 or generator_bound:
                    break
                held = result
    return held or {"deliveries_per_s": 0.0}


async def main_async(args: argparse.Namespace) -> None:
    pgdata = Path(tempfile.mkdtemp(prefix="scaleout-pg-")) / "pgdata"
    dsn, server = start_embedded(pgdata)
    try:
        runs: dict[int, list[dict[str, Any]]] = {count: [] for count in (1, 2)}
        for _ in range(args.pairs):
            for count in args.node_counts:
                runs[count].append(await one_run(args, count, dsn, pgdata))
                print(f"{count} node(s): {json.dumps(runs[count][-1])}", flush=True)
    finally:
        stop_embedded(server)
    d1 = statistics.median(r["deliveries_per_s"] for r in runs[1] or [{"deliveries_per_s": 0}])
    d2 = statistics.median(r["deliveries_per_s"] for r in runs[2] or [{"deliveries_per_s": 0}])
    summary = {
        "adapter": args.adapter,
        "node_cores": args.node_cores,
        "D1": d1,
        "D2": d2,
        "efficiency": round(d2 / (2 * d1), 3) if d1 else None,
        "runs": runs,
    }
    print(json.dumps(summary, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", choices=["postgres", "redis"], default="postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--node-counts", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--node-cores", type=float, default=0.5)
    parser.add_argument("--step-seconds", type=float, default=5)
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[500, 1000, 1500, 2000, 3000, 4000, 5000, 6000]
    )
    trio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
