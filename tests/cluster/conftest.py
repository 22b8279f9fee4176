"""Several Parley nodes in one test: each a whole `serve` (its own runtime, sockets and HTTP
listener) on its own port, sharing the test's PostgreSQL database and a cluster bus."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

from parley.actors.realtime.cluster import ClusterPubSub
from parley.config import Settings
from parley.service import RunningServer, serve
from tests.cluster.redis_server import redis_server
from tests.socket.conftest import Realtime, socket_settings

FAST_CLUSTER: dict[str, Any] = {
    "heartbeat_seconds": 0.2,
    "probe_timeout_seconds": 3.0,
    "node_timeout_seconds": 2.0,
    "gap_wait_ms": 50.0,
}
"""Short periods, so that a node's liveness and a gap's wait take a fraction of a second."""

DEADLINE_SECONDS = 30.0

_clusters = itertools.count(1)


def node_settings(
    tmp_path: Path, database_url: str, name: str, adapter: str, **cluster: Any
) -> Settings:
    return socket_settings(
        tmp_path / name,
        database_url,
        cluster={**FAST_CLUSTER, "adapter": adapter, "node_name": name, **cluster},
    )


async def start_nodes(nursery: trio.Nursery, settings: list[Settings]) -> list[Realtime]:
    """Start every node, then wait until each hears its own heartbeat and every other node."""
    nodes = []
    for node in settings:
        running: RunningServer = await nursery.start(partial(serve, node, handle_signals=False))
        nodes.append(Realtime(running))
    names = {cluster_of(node).node for node in nodes}

    def formed() -> bool:
        return all(
            cluster_of(node).state == "up"
            and {p["node"] for p in cluster_of(node).describe()["nodes"]}
            == names - {cluster_of(node).node}
            for node in nodes
        )

    await wait_until(formed, "every node is up and hears the others")
    return nodes


def cluster_of(node: Realtime) -> ClusterPubSub:
    cluster = node.runtime.cluster
    assert cluster is not None
    return cluster


def unique_channel() -> str:
    return f"parley_test_{next(_clusters)}_{uuid.uuid4().hex[:8]}"


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` (on the real clock: PostgreSQL is real) until a generous deadline."""
    with trio.fail_after(DEADLINE_SECONDS):
        while not condition():  # noqa: ASYNC110 (polling other nodes' state)
            await trio.sleep(0.02)
    assert condition(), what


__all__ = ["redis_server"]
