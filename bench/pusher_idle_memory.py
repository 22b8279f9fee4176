"""Where Parley's memory per idle Pusher connection goes: a tracemalloc top-10 (P3's question).

    .venv/bin/python bench/pusher_idle_memory.py                     # 2,000 connections
    .venv/bin/python bench/pusher_idle_memory.py --connections 5000 --group lineno

Runs `parley serve` in this process (embedded PostgreSQL in a temporary data directory,
`server.env = dev`; DATABASE_URL is ignored), makes one application straight in the store, and
opens `--connections` pusher-js connections from Node processes (bench/node/pusher_worker.mjs,
as in P3: each subscribed to a public channel, groups of 10). tracemalloc starts after one
warm-up connection (so first-use state is not counted); snapshots before and after the ramp
(after a settle and a `gc.collect()`) are compared, and the ten sources that grew the most are
printed per connection, with the traced total and the RSS delta beside them. tracemalloc sees
only Python's allocations: the gap to the RSS delta is allocator overhead and C-side memory.
tracemalloc slows the server, so only the sizes mean anything here, not the times.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import tracemalloc
from functools import partial
from pathlib import Path

import trio

import run as bench


async def measure(connections: int, group: str, frames: int) -> None:
    from parley.config import load_settings, with_jwt_secret
    from parley.integrations.applications import new_key, new_secret
    from parley.service import RunningServer, serve
    from parley.store.applications import NewApplication

    run_dir = Path(tempfile.mkdtemp(prefix="parley-idle-memory-"))
    settings = with_jwt_secret(
        load_settings(
            overrides={"server": {"port": 0, "data_dir": str(run_dir / "data"), "env": "dev"}}
        )
    )
    async with trio.open_nursery() as nursery:
        running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
        stores = running.context.stores
        owner = await stores.users.create(
            email="memory@example.com",
            username="memory",
            password_hash="x" * 20,
            role="registered",
            confirmed=True,
        )
        organization = await stores.organizations.create("Memory", "memory", owner.id)
        app = await stores.applications.create(
            NewApplication(
                organization_id=organization.id,
                name="memory",
                app_key=new_key(),
                app_secret=new_secret(),
                webhook_url=None,
                client_events=True,
                max_connections=None,
            )
        )
        port = int(running.base_url.rsplit(":", 1)[1])
        args = {"host": "127.0.0.1", "port": port, "key": app.app_key, "secret": app.app_secret}
        procs = max(1, connections // 2_500 + (connections % 2_500 > 0))
        async with bench.workers(procs, run_dir, "pusher_worker.mjs") as pool:
            await pool[0].call(
                {"cmd": "open", **args, "conns": [{"channels": ["warm"]}], "rate": 10}, 60
            )
            await trio.sleep(1)
            tracemalloc.start(frames)
            gc.collect()
            rss_before = bench.rss_bytes(os.getpid())
            before = tracemalloc.take_snapshot()
            specs = [{"channels": [f"idle-{i // 10}"]} for i in range(connections)]
            commands = [
                {"cmd": "open", **args, "conns": share, "rate": 500 / len(pool)}
                for share in bench.split(specs, len(pool))
            ]
            answers = await bench.call_all(pool, commands, limit_s=connections / 250 + 120)
            opened = sum(a["ok"] for a in answers)
            await trio.sleep(3)
            gc.collect()
            after = tracemalloc.take_snapshot()
            rss_after = bench.rss_bytes(os.getpid())
            tracemalloc.stop()
        nursery.cancel_scope.cancel()
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
    ]
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), group)
    traced = sum(s.size_diff for s in stats)
    print(
        f"{opened} of {connections} pusher-js connections opened; per connection: RSS "
        f"{(rss_after - rss_before) / 1024 / max(opened, 1):.1f} KB, traced by tracemalloc "
        f"{traced / 1024 / max(opened, 1):.1f} KB (Python objects); top 10 by {group}:"
    )
    per = max(opened, 1)
    top = sum(stat.size_diff for stat in stats[:10])
    print(f"(these ten: {top / 1024 / per:.1f} KB per connection)")
    for stat in stats[:10]:
        where = stat.traceback.format(limit=frames if group == "traceback" else 1)
        print(
            f"{stat.size_diff / per:8.0f} B/conn  {stat.count_diff / per:6.1f} blocks/conn  "
            f"{' <- '.join(line.strip() for line in where if line.strip())}"
        )


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=2_000)
    parser.add_argument("--group", choices=("lineno", "filename", "traceback"), default="lineno")
    parser.add_argument("--frames", type=int, default=1, help="frames kept per allocation")
    args = parser.parse_args()
    trio.run(measure, args.connections, args.group, args.frames)


if __name__ == "__main__":
    cli()
