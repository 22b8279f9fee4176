"""The operator's view (DESIGN §6): live actors, the supervision tree, and killing one actor.

Guarded by the operator token (`debug.operator_token`) or an admin's access token.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from quart import Blueprint, Response, jsonify, request

from parley.api.context import parley_context
from parley.api.endpoint import Auth, principal_for_token
from parley.api.errors import ApiError, forbidden, not_found, unauthorized

blueprint = Blueprint("debug", __name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def operator_only(handler: F) -> F:
    """Let the request through with the operator token, or an admin's bearer token."""

    @functools.wraps(handler)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("operator token or admin token required")
        expected = parley_context().settings.debug.operator_token
        if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
            try:
                principal = await principal_for_token(token)
            except ApiError:
                raise unauthorized("operator token or admin token required") from None
            if principal.level < Auth.ADMIN:
                raise forbidden("operators and admins only")
        return await handler(*args, **kwargs)

    return guarded  # type: ignore[return-value]


@blueprint.get("/debug/actors")
@operator_only
async def actors() -> Response:
    return jsonify({"actors": parley_context().runtime.describe_actors()})


@blueprint.get("/debug/actors/<actor_id>")
@operator_only
async def actor(actor_id: str) -> Response:
    described = parley_context().runtime.describe_actor(actor_id)
    if described is None:
        raise not_found("no such actor")
    return jsonify(described)


@blueprint.post("/debug/actors/<actor_id>/kill")
@operator_only
async def kill_actor(actor_id: str) -> tuple[Response, int]:
    reason = request.args.get("reason", "killed by an operator")
    if not parley_context().runtime.kill_actor(actor_id, reason[:200]):
        raise not_found("no such actor")
    return jsonify({"killed": actor_id}), 202


@blueprint.get("/debug/tree")
@operator_only
async def tree() -> Response:
    return jsonify(parley_context().runtime.describe_tree())


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Parley actors</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}th{background:#f4f4f4}
pre{background:#f8f8f8;padding:.5rem}</style></head><body><h1>Parley: live actors</h1>
<p>Refreshes every 2 s. Same data: <code>/debug/actors</code>, <code>/debug/tree</code>.</p>
<div id="actors"></div><h2>Supervision tree</h2><pre id="tree"></pre>
<script>
const token = new URLSearchParams(location.hash.slice(1)).get('token') || prompt('operator token');
const headers = {Authorization: 'Bearer ' + token};
const cols = ['id','kind','key','mailbox_depth','mailbox_capacity','processed','dropped','restarts',
              'started_at','last_error'];
async function refresh() {
  const [a, t] = await Promise.all([fetch('/debug/actors', {headers}).then(r => r.json()),
                                    fetch('/debug/tree', {headers}).then(r => r.json())]);
  const table = document.createElement('table');
  const head = table.insertRow(); for (const c of cols) head.insertCell().outerHTML = '<th>' + c +
  '</th>';
  for (const row of a.actors || []) { const tr = table.insertRow();
    for (const c of cols) tr.insertCell().textContent = row[c] ?? ''; }
  document.getElementById('actors').replaceChildren(table);
  document.getElementById('tree').textContent = JSON.stringify(t, null, 2);
}
refresh(); setInterval(refresh, 2000);
</script></body></html>"""


@blueprint.get("/debug")
async def page() -> Response:
    # The page holds no data; it asks the guarded JSON endpoints with the token the operator gives.
    return Response(_PAGE, content_type="text/html; charset=utf-8")
