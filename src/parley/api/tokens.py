"""API tokens (ExPusherLite): long-lived secrets for scripts and servers, exchanged for JWTs.

`POST /api/tokens` shows a token once (`plt_` + 256 random bits); only its SHA-256 is stored.
`POST /api/session` exchanges it for a short-lived JWT of kind `api_session`, which names the API
token, so deleting the API token invalidates its sessions at once (checked on every request). As in
ExPusherLite, the token may come as the form `token=...` (`curl --data`), and the JWT is answered
under its name `jwt` as well as `access_token`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from quart import Blueprint, Response, jsonify

from parley.accounts import hash_opaque, new_opaque_token
from parley.accounts.validation import NAME_MAX_CHARS, check_name
from parley.api.account_common import read_strings, require_interactive
from parley.api.body import json_object, json_or_form_object
from parley.api.context import parley_context
from parley.api.endpoint import ERROR_RESPONSE, NO_CONTENT, Auth, current_principal, endpoint, ok
from parley.api.errors import ApiError, conflict, invalid, not_found
from parley.api.schemas import CURSOR, NULLABLE_TIME, TIME, UUID, obj
from parley.isotime import iso

if TYPE_CHECKING:
    import uuid

    from parley.store.tokens import ApiToken

blueprint = Blueprint("tokens", __name__)

API_TOKEN_PREFIX: Final = "plt_"
MAX_API_TOKENS_PER_USER: Final = 100

API_TOKEN = obj(
    {"id": UUID, "name": {"type": "string"}, "inserted_at": TIME, "last_used_at": NULLABLE_TIME}
)
NEW_API_TOKEN = obj({**API_TOKEN["properties"], "token": {"type": "string", "pattern": "^plt_"}})
CREATE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX_CHARS}},
}
SESSION_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["token"],
    "properties": {"token": {"type": "string"}},
}
API_SESSION = obj(
    {
        "jwt": {"type": "string", "description": "the same token as access_token (ExPusherLite)"},
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer", "minimum": 0},
        "access_token_expires_at": TIME,
    }
)


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": str(token.id),
        "name": token.name,
        "inserted_at": iso(token.inserted_at),
        "last_used_at": iso(token.last_used_at),
    }


@endpoint(
    blueprint,
    "POST",
    "/api/tokens",
    summary="Create an API token; the token is in this answer only (stored hashed)",
    auth=Auth.REGISTERED,
    body=CREATE_BODY,
    responses={
        201: ok("created", NEW_API_TOKEN),
        403: ERROR_RESPONSE,
        409: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
    },
)
async def create_token() -> tuple[Response, int]:
    principal = current_principal()
    require_interactive(principal)
    name = (read_strings(await json_object(), required=("name",))["name"] or "").strip()
    problems = check_name(name) if name else ["is required"]
    if problems:
        raise invalid({"name": problems})
    tokens = parley_context().stores.tokens
    if await tokens.count_api_tokens(principal.user.id) >= MAX_API_TOKENS_PER_USER:
        raise conflict(f"at most {MAX_API_TOKENS_PER_USER} API tokens; delete one first")
    plaintext, digest = new_opaque_token(API_TOKEN_PREFIX)
    token = await tokens.add_api_token(principal.user.id, name, digest)
    return jsonify({**token_json(token), "token": plaintext}), 201


@endpoint(
    blueprint,
    "GET",
    "/api/tokens",
    summary="My API tokens (never the secrets), newest first",
    auth=Auth.REGISTERED,
    responses={
        200: ok(
            "all of them (at most 100)",
            obj({"data": {"type": "array", "items": API_TOKEN}, "next_cursor": CURSOR}),
        )
    },
)
async def list_tokens() -> Response:
    tokens = await parley_context().stores.tokens.api_tokens(current_principal().user.id)
    return jsonify({"data": [token_json(t) for t in tokens], "next_cursor": None})


@endpoint(
    blueprint,
    "DELETE",
    "/api/tokens/<uuid:token_id>",
    summary="Delete an API token: it and every session made with it stop working now",
    auth=Auth.REGISTERED,
    responses={204: NO_CONTENT, 403: ERROR_RESPONSE},
)
async def delete_token(token_id: uuid.UUID) -> tuple[str, int]:
    principal = current_principal()
    require_interactive(principal)
    if not await parley_context().stores.tokens.revoke_api_token(principal.user.id, token_id):
        raise not_found("no such API token")
    return "", 204


@endpoint(
    blueprint,
    "POST",
    "/api/session",
    summary="Exchange an API token for a short-lived JWT (Bearer) for REST and the socket",
    auth=Auth.ANONYMOUS,
    body=SESSION_BODY,
    form=True,
    responses={200: ok("a session", API_SESSION), 401: ERROR_RESPONSE, 422: ERROR_RESPONSE},
)
async def api_session() -> Response:
    context = parley_context()
    token = read_strings(await json_or_form_object(), required=("token",))["token"] or ""
    found = (
        await context.stores.tokens.use_api_token(hash_opaque(token))
        if token.startswith(API_TOKEN_PREFIX)
        else None
    )
    if found is None:
        raise ApiError(401, "invalid_token", "unknown or deleted API token")
    api_token, user = found
    jwt, expires_at = context.tokens.issue_api_session(
        user.id, user.role, user.token_version, api_token.id
    )
    return jsonify(
        {
            "jwt": jwt,
            "access_token": jwt,
            "token_type": "Bearer",
            "expires_in": max(0, int((expires_at - datetime.now(UTC)).total_seconds())),
            "access_token_expires_at": iso(expires_at),
        }
    )
