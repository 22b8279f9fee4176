"""Realtime administration: `POST /api/admin/announcements` {message} (admins) broadcasts
`announcement` {message, from, inserted_at} to every socket joined to `system:general` (and
records it in the audit log).

The operator's socket controls (list, close) are the console's: `parley.api.operator`.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify

from parley.api.body import json_object
from parley.api.context import parley_context
from parley.api.endpoint import ERROR_RESPONSE, Auth, current_principal, endpoint, ok
from parley.api.errors import invalid
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
