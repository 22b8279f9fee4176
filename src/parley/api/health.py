"""`GET /health`: is the database reachable, does the node take sockets, how many actors live.

503 while the database is unreachable, and while the node drains (`accepting: false`), so a load
balancer stops sending it new connections (docs/operators.md, "Draining a node").
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
    body = {"database": database, "accepting": accepting, "actors": actors}
    if database != "ok":
        return jsonify({"status": "error", **body}), 503
    if not accepting:
        return jsonify({"status": "draining", **body}), 503
    return jsonify({"status": "ok", **body}), 200
