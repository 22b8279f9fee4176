"""Declaring an endpoint: its route, who may call it, and its OpenAPI description, in one place.

Every REST handler is declared with `endpoint(...)`. The declaration is the authorization layer (the
`auth` level is checked before the handler runs, never with ad-hoc ifs inside it) and the source of
the OpenAPI document, so the document cannot drift from the routes that exist.
"""

from __future__ import annotations

import enum
import functools
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from quart import Blueprint, g, request

from parley.accounts import InvalidToken
from parley.api.body import FORM, JSON
from parley.api.context import parley_context
from parley.api.errors import ApiError, forbidden, unauthorized
from parley.store.user_records import User

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class Auth(enum.IntEnum):
    """Who may call an endpoint; each level includes the ones above it (anonymous < ... < admin)."""

    ANONYMOUS = 0
    REGISTERED = 1
    MODERATOR = 2
    ADMIN = 3


ROLE_LEVELS = {"registered": Auth.REGISTERED, "moderator": Auth.MODERATOR, "admin": Auth.ADMIN}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of this request."""

    user: User
    via_api_token: uuid.UUID | None = None

    @property
    def level(self) -> Auth:
        return ROLE_LEVELS.get(self.user.role, Auth.REGISTERED)


@dataclass(frozen=True)
class Operation:
    """One documented operation: what the OpenAPI document says about a route."""

    method: str
    path: str
    summary: str
    tag: str
    auth: Auth
    request_body: dict[str, Any] | None
    responses: dict[int, dict[str, Any]]
    parameters: list[dict[str, Any]] = field(default_factory=list)
    operation_id: str = ""
    request_required: bool = True
    request_media_types: tuple[str, ...] = (JSON,)
    optional_auth: bool = False


OPERATIONS: list[Operation] = []
"""Every declared operation, filled as blueprints are imported (a static route table, like
Quart's)."""

_PATH_PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """`/api/users/<uuid:user_id>` -> (`/api/users/{user_id}`, its path parameters)."""
    parameters = []
    for converter, name in _PATH_PARAMETER.findall(rule):
        schema: dict[str, Any] = {"type": "string"}
        if converter == "uuid":
            schema = {"type": "string", "format": "uuid"}
        elif converter == "int":
            schema = {"type": "integer", "minimum": 0}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _PATH_PARAMETER.sub(r"{\2}", rule), parameters


def endpoint(
    blueprint: Blueprint,
    method: str,
    rule: str,
    *,
    summary: str,
    auth: Auth,
    responses: dict[int, dict[str, Any]],
    body: dict[str, Any] | None = None,
    body_required: bool = True,
    form: bool = False,
    query: list[dict[str, Any]] | None = None,
    optional_auth: bool = False,
) -> Callable[[F], F]:
    """Register `rule` on `blueprint`, enforce `auth`, and document the operation.

    `form=True` documents `body` as an `application/x-www-form-urlencoded` form as well as JSON;
    the handler then reads it with `body.json_or_form_object`. `optional_auth=True` (with
    `Auth.ANONYMOUS`): anybody may call it, and a bearer token, when one is sent, is checked
    (401 if it is bad) and makes the caller `optional_principal()` (what they see may depend on
    who they are, as a seller sees their own hidden listing).
    """
    path, path_parameters = openapi_path(rule)
    documented = dict(responses)
    documented.setdefault(503, ERROR_RESPONSE)  # the database cannot answer now (api/errors.py)
    if auth > Auth.ANONYMOUS or optional_auth:
        documented.setdefault(401, ERROR_RESPONSE)
    if auth > Auth.REGISTERED:
        documented.setdefault(403, ERROR_RESPONSE)
    if body is not None:
        documented.setdefault(400, ERROR_RESPONSE)
        documented.setdefault(413, ERROR_RESPONSE)
        documented.setdefault(415, ERROR_RESPONSE)
    if path_parameters:
        documented.setdefault(404, ERROR_RESPONSE)

    def decorate(handler: F) -> F:
        OPERATIONS.append(
            Operation(
                method=method.lower(),
                path=path,
                summary=summary,
                tag=blueprint.name,
                auth=auth,
                request_body=body,
                responses=documented,
                parameters=path_parameters + (query or []),
                operation_id=f"{blueprint.name}_{handler.__name__}",
                request_required=body_required,
                request_media_types=(JSON, FORM) if form else (JSON,),
                optional_auth=optional_auth,
            )
        )

        @functools.wraps(handler)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if auth > Auth.ANONYMOUS:
                principal = await authenticate()
                if principal.level < auth:
                    raise forbidden(f"requires the {auth.name.lower()} role")
            elif optional_auth and "Authorization" in request.headers:
                await authenticate()
            return await handler(*args, **kwargs)

        blueprint.add_url_rule(rule, handler.__name__, guarded, methods=[method])
        return handler

    return decorate


async def authenticate() -> Principal:
    """Resolve the bearer token of this request to a live, unbanned user, or raise 401.

    The user row is read on every request so that logout_all, a password change or a ban (each bumps
    `token_version`) refuses every older token at once, not when it expires.
    """
    cached: Principal | None = g.get("principal")
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    principal = await principal_for_token(token.strip())
    g.principal = principal
    return principal


async def principal_for_token(token: str) -> Principal:
    """The user an access or API-session JWT stands for, if the token is still good."""
    context = parley_context()
    try:
        claims = context.tokens.verify_access(token)
    except InvalidToken as exc:
        raise ApiError(
            401,
            "invalid_token",
            "the token is invalid or expired",
            headers={
                "WWW-Authenticate": (
                    f'Bearer error="invalid_token", error_description="{exc.reason}"'
                )
            },
        ) from None
    user = await context.stores.users.get(claims.user_id)
    if user is None or user.banned_at is not None or user.token_version != claims.token_version:
        raise ApiError(401, "invalid_token", "the token has been revoked")
    if claims.api_token_id is not None and not await context.stores.tokens.api_token_live(
        claims.api_token_id
    ):
        raise ApiError(401, "invalid_token", "the API token has been deleted")
    return Principal(user, claims.api_token_id)


def current_principal() -> Principal:
    """The caller of an endpoint declared with auth above ANONYMOUS."""
    principal: Principal = g.principal
    return principal


def optional_principal() -> Principal | None:
    principal: Principal | None = g.get("principal")
    return principal


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}
ERROR_RESPONSE: dict[str, Any] = {"description": "error", "schema": ERROR_SCHEMA}


def ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "schema": schema}


NO_CONTENT: dict[str, Any] = {"description": "done, no content"}
