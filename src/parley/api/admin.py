"""Administration: roles and bans (admins only); each change is recorded in the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quart import Blueprint, Response, jsonify

from parley.api.account_common import ADMIN_USER, ROLE, admin_user_json, revoke_sockets
from parley.api.body import json_object
from parley.api.context import parley_context
from parley.api.endpoint import ERROR_RESPONSE, Auth, current_principal, endpoint, ok
from parley.api.errors import ApiError, invalid, not_found
from parley.marketplace.rules import check_reason

if TYPE_CHECKING:
    import uuid

blueprint = Blueprint("admin", __name__)

ADMIN_PATCH_BODY: dict[str, Any] = {
    "type": "object",
    "description": "role and/or banned; at least one. reason: recorded in the audit log.",
    "properties": {"role": ROLE, "banned": {"type": "boolean"}, "reason": {"type": "string"}},
    "anyOf": [{"required": ["role"]}, {"required": ["banned"]}],
}
ROLES = ("registered", "moderator", "admin")


@endpoint(
    blueprint,
    "PATCH",
    "/api/admin/users/<uuid:user_id>",
    summary="Set a user's role and/or ban or unban them; their tokens and sockets stop at once. "
    "An admin cannot ban or demote themselves (409 cannot_change_self).",
    auth=Auth.ADMIN,
    body=ADMIN_PATCH_BODY,
    responses={200: ok("the user, changed", ADMIN_USER), 409: ERROR_RESPONSE, 422: ERROR_RESPONSE},
)
async def patch_user(user_id: uuid.UUID) -> Response:
    principal = current_principal()
    body = await json_object()
    errors: dict[str, list[str]] = {}
    role = body.get("role")
    banned = body.get("banned")
    if role is not None and role not in ROLES:
        errors["role"] = [f"must be one of: {', '.join(ROLES)}"]
    if banned is not None and not isinstance(banned, bool):
        errors["banned"] = ["must be true or false"]
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        errors["reason"] = ["must be a string"]
    elif isinstance(reason, str):
        reason_errors = check_reason(
            reason, parley_context().settings.marketplace.reason_max_chars, required=False
        )
        if reason_errors:
            errors["reason"] = reason_errors
    if not errors and role is None and banned is None:
        errors["_body"] = ["give role and/or banned"]
    if errors:
        raise invalid(errors)
    if user_id == principal.user.id and (banned or (role is not None and role != "admin")):
        raise ApiError(
            409,
            "cannot_change_self",
            "admins cannot ban or demote themselves; ask another admin",
        )
    user = await parley_context().stores.users.set_role_and_ban(
        user_id,
        role=role,
        banned=banned,
        audit_actor=principal.user.id,
        reason=reason.strip() if isinstance(reason, str) else None,
    )
    if user is None:
        raise not_found("no such user")
    revoke_sockets(user.id)
    return jsonify(admin_user_json(user))
