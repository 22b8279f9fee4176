"""What the operator console costs a busy node: its views and `/metrics` over N live actors.

Starts the whole service (embedded PostgreSQL, or DATABASE_URL) in this process, starts N idle
conversation-kind actors under the conversations supervisor, then times each request 21 times
from an HTTP client on the same event loop and prints the median and 90th percentile. Every
millisecond here is a millisecond the node's event loop spends on the request (the views read
trio-owned state without awaiting), so it is also the lag they add.

    .venv/bin/python bench/console_views.py [--actors 10000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial

import httpx
import trio

from parley.actors import Actor
from parley.config import load_settings, with_jwt_secret
from parley.service import RunningServer, serve
from parley.supervision import Restart

TOKEN = "bench-operator-token-0123456789"
REQUESTS = [
    ("actors, first page of 50", "/debug/actors", {}),
    ("actors, sorted by processed", "/debug/actors", {"sort": "processed", "order": "desc"}),
    (
        "actors, by kind and part of a key",
        "/debug/actors",
        {"kind": "conversation", "key": "01234"},
    ),
    ("tree", "/debug/tree", {}),
    ("metrics", "/metrics", {}),
    ("overview", "/debug/overview", {}),
]


class Idle(Actor[None, None, None]):
    kind = "conversation"


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = with_jwt_secret(
            load_settings(
                overrides={
                    "server": {"data_dir": data_dir, "env": "test", "port": 0, "access_log": False},
                    "debug": {"operator_token": TOKEN},
                }
            )
        )
        async with trio.open_nursery() as nursery:
            server: RunningServer = await nursery.start(
                partial(serve, settings, handle_signals=False)
            )
            runtime = server.runtime
            for n in range(args.actors):
                child = runtime.system.child(
                    Idle, Idle, capacity=16, key=f"conversation:{n:08d}", restart=Restart.TRANSIENT
                )
                await runtime.conversations.start_child(child.spec)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(
                base_url=server.base_url, headers=headers, timeout=60
            ) as http:
                for label, path, params in REQUESTS:
                    times = []
                    for _ in range(21):
                        started = time.perf_counter()
                        response = await http.get(path, params=params)
                        times.append((time.perf_counter() - started) * 1000)
                        response.raise_for_status()
                    print(
                        f"console, {args.actors} actors, {label}: median "
                        f"{statistics.median(times):.1f} ms, p90 {sorted(times)[18]:.1f} ms, "
                        f"{len(response.content)} bytes"
                    )
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--actors", type=int, default=10_000)
    trio.run(main, parser.parse_args())
