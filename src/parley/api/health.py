"""`GET /health`: is the database reachable, does the node take sockets, how many actors live,
and (in a cluster) the bus.

503 while the database is unreachable, and while the node drains (`accepting: false`), so a load
balancer stops sending it new connections (docs/operators.md, "Draining a node"). A node that lost
its bus answers `"status": "degraded"`, still 200, as it goes on serving its own clients (a 503
would take every node out of a load balancer at once when the shared bus is down);
`/debug/nodes` has the details.
"""

from __future__ import annotations

import trio
from quart import Blueprint, Response, jsonify

from parley.api.context import parley_context

blueprint = Blueprint("health", __name__)

HEALTH_QUERY_TIMEOUT_SECONDS = 2.0


@blueprint.get("/health")
async def health() -> tuple[Response, int]:
    context = parley_context()
    actors = context.runtime.actor_count()
    database = "ok"
    with trio.move_on_after(HEALTH_QUERY_TIMEOUT_SECONDS) as timeout:
        try:
            await context.database.fetchval("SELECT 1")
        except Exception as exc:  # any failure to reach PostgreSQL makes the service unhealthy
            database = f"error: {type(exc).__name__}"
    if timeout.cancelled_caught:
        database = "error: timeout"
    accepting = context.sockets.accepting
    body: dict[str, object] = {"database": database, "accepting": accepting, "actors": actors}
    if database != "ok":
        return jsonify({"status": "error", **body}), 503
    if not accepting:
        return jsonify({"status": "draining", **body}), 503
    status = "ok"
    cluster = context.runtime.cluster
    if cluster is not None:
        body["cluster"] = {"node": cluster.node, "bus": cluster.state}
        if cluster.degraded:
            status = "degraded"
    return jsonify({"status": status, **body}), 200
