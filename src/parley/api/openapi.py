"""The OpenAPI 3.1 document, built from the declared endpoints, and a page that renders it.

The page is rendered on the server from the same document: it used to be a script that drew only
each operation's request body and responses, so the query parameters (`?limit=&before=`, ...)
that the document carries were on no page.
"""

from __future__ import annotations

import json
from html import escape
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
    elif op.optional_auth:
        doc["security"] = [{}, {"bearer": []}]
        doc["description"] = "Open to anybody; a bearer token, when sent, must be valid."
    if op.request_body is not None:
        doc["requestBody"] = {
            "required": op.request_required,
            "content": {media: {"schema": op.request_body} for media in op.request_media_types},
        }
    for status, response in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": response.get("description", "")}
        if "schema" in response:
            entry["content"] = {"application/json": {"schema": response["schema"]}}
        if status in (429, 503):
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


_DOCS_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ddd;margin-top:2rem} code{background:#f4f4f4;padding:0 .3em}
.op{margin:.6rem 0;padding:.5rem .8rem;border-left:4px solid #4a7} .m{font-weight:bold;width:4.5rem;
display:inline-block;text-transform:uppercase} table{border-collapse:collapse;margin:.4rem 0}
td,th{border:1px solid #ddd;padding:.15rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4} pre{background:#f8f8f8;padding:.5rem;overflow:auto}
"""


def docs_page(document: dict[str, Any]) -> str:
    """The OpenAPI document as one HTML page, rendered here (no script, nothing fetched): per
    operation its method, path and summary, a table of its path and query parameters, and its
    request body and responses."""
    by_tag: dict[str, list[str]] = {}
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            by_tag.setdefault(op["tags"][0], []).append(_docs_operation(method, path, op))
    parts = [
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Parley API</title>',
        f"<style>{_DOCS_STYLE}</style></head><body><h1>Parley API</h1>",
        '<p>Machine-readable: <a href="/api/openapi.json"><code>/api/openapi.json</code></a> '
        f"(OpenAPI {escape(document['openapi'])}).</p>",
    ]
    for tag, operations in by_tag.items():
        parts.append(f'<h2 id="{escape(tag)}">{escape(tag)}</h2>')
        parts.extend(operations)
    parts.append("</body></html>")
    return "\n".join(parts)


def _docs_operation(method: str, path: str, op: dict[str, Any]) -> str:
    summary = op["summary"] + (f" — {op['description']}" if op.get("description") else "")
    parts = [
        f'<section class="op" id="{escape(op["operationId"])}">',
        f'<div><span class="m">{escape(method)}</span><code>{escape(path)}</code> '
        f"{escape(summary)}</div>",
    ]
    parameters = op.get("parameters", [])
    if parameters:
        parts.append(
            '<table class="parameters"><tr><th>parameter</th><th>in</th><th>schema</th>'
            "<th>required</th><th>description</th></tr>"
        )
        for parameter in parameters:
            schema = json.dumps(parameter.get("schema", {}), ensure_ascii=False)
            parts.append(
                f'<tr><td><code class="parameter">{escape(parameter["name"])}</code></td>'
                f"<td>{escape(parameter['in'])}</td><td><code>{escape(schema)}</code></td>"
                f"<td>{'yes' if parameter.get('required') else 'no'}</td>"
                f"<td>{escape(parameter.get('description', ''))}</td></tr>"
            )
        parts.append("</table>")
    if "requestBody" in op:
        body = json.dumps(op["requestBody"], indent=2, ensure_ascii=False)
        parts.append(f"<details><summary>request body</summary><pre>{escape(body)}</pre></details>")
    responses = json.dumps(op["responses"], indent=2, ensure_ascii=False)
    parts.append(
        f"<details><summary>responses: {escape(', '.join(op['responses']))}</summary>"
        f"<pre>{escape(responses)}</pre></details></section>"
    )
    return "".join(parts)


@blueprint.get("/api/docs")
async def docs() -> Response:
    return Response(docs_page(openapi_document()), content_type="text/html; charset=utf-8")
