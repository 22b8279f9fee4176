"""Realtime administration: announcements on `system:general`, and the operator's socket controls.

* `POST /api/admin/announcements` {message} (admins): broadcast `announcement`
  {message, from, inserted_at} to every socket joined to `system:general` (and record it in the
  audit log).
* `GET /debug/sockets` (operator token or admin JWT): connection count and socket counters.
* `POST /debug/sockets/{user_id}/close` (same guard): close every socket of that user with 1012
  ("service restart": every phoenix.js version reconnects, §9.2); `?code=1001` closes with
  1001 instead. Used by the conformance suite as a restart stand-in.
"""

from __future__ import annotations

import uuid
from typing import Any

from quart import Blueprint, Response, jsonify, request

from parley.api.body import json_object
from parley.api.context import parley_context
from parley.api.debug import operator_only
from parley.api.endpoint import ERROR_RESPONSE, Auth, current_principal, endpoint, ok
from parley.api.errors import invalid, not_found
from parley.api.socket.core.close_codes import CLOSE_GOING_AWAY, CLOSE_SERVICE_RESTART
from parley.api.socket.core.hub import SocketHub
from parley.isotime import now_iso
from parley.store.audit import AuditEntry

blueprint = Blueprint("realtime", __name__)

ANNOUNCEMENT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string", "minLength": 1}},
}
ANNOUNCEMENT: dict[str, Any] = {
    "type": "object",
    "required": ["message", "from", "inserted_at", "recipients"],
    "properties": {
        "message": {"type": "string"},
        "from": {"type": "string", "format": "uuid"},
        "inserted_at": {"type": "string", "format": "date-time"},
        "recipients": {"type": "integer", "minimum": 0},
    },
}


def hub() -> SocketHub:
    return parley_context().sockets


@endpoint(
    blueprint,
    "POST",
    "/api/admin/announcements",
    summary="Broadcast an announcement to every socket joined to system:general.",
    auth=Auth.ADMIN,
    body=ANNOUNCEMENT_BODY,
    responses={200: ok("the announcement as broadcast", ANNOUNCEMENT), 422: ERROR_RESPONSE},
)
async def announce() -> Response:
    body = await json_object()
    message = body.get("message")
    limit = parley_context().settings.messages.body_max_chars
    if not isinstance(message, str) or not message.strip():
        raise invalid({"message": ["must not be blank"]})
    if len(message) > limit:
        raise invalid({"message": [f"at most {limit} characters"]})
    payload = {
        "message": message,
        "from": str(current_principal().user.id),
        "inserted_at": now_iso(),
    }
    recipients = hub().pubsub.publish("system:general", "announcement", payload)
    await parley_context().stores.audit.add(
        AuditEntry(
            current_principal().user.id,
            "announcement",
            "topic",
            "system:general",
            details={"message": message, "recipients": recipients},
        )
    )
    return jsonify({**payload, "recipients": recipients})


@blueprint.get("/debug/sockets")
@operator_only
async def sockets() -> Response:
    return jsonify(hub().statistics())


@blueprint.post("/debug/sockets/<user_id>/close")
@operator_only
async def close_user_sockets(user_id: str) -> tuple[Response, int]:
    try:
        uid = uuid.UUID(user_id)
    except ValueError:
        raise not_found("no such user") from None
    code = CLOSE_GOING_AWAY if request.args.get("code") == "1001" else CLOSE_SERVICE_RESTART
    closed = hub().close_user(uid, code, "closed by an operator")
    return jsonify({"closed": closed, "code": code}), 202
