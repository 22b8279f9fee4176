"""The OpenAPI 3.1 document, built from the declared endpoints, and a page that renders it."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify

from parley import __version__
from parley.api.endpoint import OPERATIONS, Auth, Operation

blueprint = Blueprint("openapi", __name__)


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {},
    }
    if op.parameters:
        doc["parameters"] = op.parameters
    if op.auth > Auth.ANONYMOUS:
        doc["security"] = [{"bearer": []}]
        doc["description"] = f"Requires the {op.auth.name.lower()} role or above."
    if op.request_body is not None:
        doc["requestBody"] = {
            "required": op.request_required,
            "content": {media: {"schema": op.request_body} for media in op.request_media_types},
        }
    for status, response in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": response.get("description", "")}
        if "schema" in response:
            entry["content"] = {"application/json": {"schema": response["schema"]}}
        if status == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        doc["responses"][str(status)] = entry
    return doc


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Parley",
            "version": __version__,
            "description": "REST API of Parley, an actor-model chat backend. Errors always have "
            'the shape {"error": {"code", "message", "fields"?}}. Real-time traffic uses the '
            "Phoenix Channels socket at /socket/websocket.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        },
    }


@blueprint.get("/api/openapi.json")
async def openapi_json() -> Response:
    return jsonify(openapi_document())


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parley API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ddd;margin-top:2rem} code{background:#f4f4f4;padding:0 .3em}
.op{margin:.6rem 0;padding:.5rem .8rem;border-left:4px solid #4a7} .m{font-weight:bold;width:4.5rem;
display:inline-block;text-transform:uppercase} details
pre{background:#f8f8f8;padding:.5rem;overflow:auto}
</style></head><body><h1>Parley API</h1>
<p>Machine-readable: <a href="/api/openapi.json"><code>/api/openapi.json</code></a> (OpenAPI
3.1).</p>
<div id="ops">Loading…</div>
<script>
fetch('/api/openapi.json').then(r => r.json()).then(doc => {
  const byTag = {};
  for (const [path, ops] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(ops))
      (byTag[op.tags[0]] ||= []).push({path, method, op});
  const root = document.getElementById('ops'); root.textContent = '';
  for (const [tag, ops] of Object.entries(byTag)) {
    const h = document.createElement('h2'); h.textContent = tag; root.append(h);
    for (const {path, method, op} of ops) {
      const div = document.createElement('div'); div.className = 'op';
      const head = document.createElement('div');
      head.innerHTML = '<span class="m"></span><code></code> <span></span>';
      head.children[0].textContent = method; head.children[1].textContent = path;
      head.children[2].textContent = op.summary + (op.description ? ' — ' + op.description : '');
      const det = document.createElement('details'); const sum = document.createElement('summary');
      sum.textContent = 'schema'; const pre = document.createElement('pre');
      pre.textContent = JSON.stringify({requestBody: op.requestBody, responses: op.responses},
      null, 2);
      det.append(sum, pre); div.append(head, det); root.append(div);
    }
  }
});
</script></body></html>"""


@blueprint.get("/api/docs")
async def docs() -> Response:
    return Response(_DOCS_PAGE, content_type="text/html; charset=utf-8")
