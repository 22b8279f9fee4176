"""The audit log over REST: `GET /api/admin/audit` (moderators and admins), newest first."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from parley.api.body import query_int
from parley.api.context import parley_context
from parley.api.endpoint import ERROR_RESPONSE, Auth, endpoint, ok
from parley.api.pagination import PAGE_QUERY, decode_cursor, encode_cursor
from parley.api.schemas import TIME, UUID, obj, page_of
from parley.isotime import iso
from parley.marketplace.permissions import RULES, Action
from parley.store.audit import AuditRecord

blueprint = Blueprint("audit", __name__)

AUDIT_ENTRY = obj(
    {
        "id": UUID,
        "actor": obj(
            {
                "id": {"type": ["string", "null"], "format": "uuid"},
                "username": {"type": ["string", "null"]},
            }
        ),
        "action": {"type": "string"},
        "target": obj({"type": {"type": "string"}, "id": {"type": "string"}}),
        "reason": {"type": ["string", "null"]},
        "details": {"type": "object"},
        "at": TIME,
    }
)


def audit_json(entry: AuditRecord) -> dict[str, object]:
    return {
        "id": str(entry.id),
        "actor": {
            "id": str(entry.actor_id) if entry.actor_id else None,
            "username": entry.actor_username,
        },
        "action": entry.action,
        "target": {"type": entry.target_type, "id": entry.target_id},
        "reason": entry.reason,
        "details": entry.details,
        "at": iso(entry.at),
    }


@endpoint(
    blueprint,
    "GET",
    "/api/admin/audit",
    summary="Every moderation and admin action (hide, unhide, delete, ban, role change, "
    "announcement): actor, action, target, reason, at; newest first",
    auth=Auth(int(RULES[Action.READ_AUDIT].level)),
    query=PAGE_QUERY,
    responses={200: ok("a page of entries", page_of(AUDIT_ENTRY)), 422: ERROR_RESPONSE},
)
async def audit_log() -> Response:
    context = parley_context()
    limits = context.settings.marketplace
    limit = query_int("limit", limits.page_default_limit, minimum=1, maximum=limits.page_max_limit)
    before = decode_cursor(request.args.get("before"))
    entries = await context.stores.audit.page(limit=limit, before=before)
    next_cursor = None
    if len(entries) == limit:
        next_cursor = encode_cursor(entries[-1].at, entries[-1].id)
    return jsonify({"data": [audit_json(e) for e in entries], "next_cursor": next_cursor})
