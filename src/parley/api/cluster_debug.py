"""`GET /debug/nodes` (DESIGN §6, §8): this node, its bus, and the other nodes it hears.

Guarded as every operator route is. On a single node (`cluster.adapter = "none"`) it says so
with an empty list. `describe()` has the counters `/metrics` can expose (envelopes and bytes in
and out, gaps filled, resyncs).
"""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from parley.api.context import parley_context
from parley.api.debug import operator_only

blueprint = Blueprint("cluster_debug", __name__)


@blueprint.get("/debug/nodes")
@operator_only
async def nodes() -> Response:
    cluster = parley_context().runtime.cluster
    if cluster is None:
        return jsonify({"adapter": "none", "nodes": []})
    return jsonify(cluster.describe())
