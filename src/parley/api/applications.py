"""Applications of an organization (DESIGN §4.2, ExPusherLite): REST handlers.

`GET /api/organizations/{slug}/applications` answers the seed's shape, `{"data": [{name, id,
archived_at, app_secret, app_key, ...}]}`; the secret only for the organization's admins (and
site admins), `null` for other members. Every change is forgotten by the node's application
cache at once (`ApplicationDirectory.forget`), and archiving closes the application's sockets.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, request

from parley.api.body import json_object, query_int
from parley.api.context import parley_context
from parley.api.endpoint import ERROR_RESPONSE, Auth, current_principal, endpoint, ok
from parley.api.errors import conflict, invalid, not_found
from parley.api.organizations import organization_for
from parley.api.pagination import PAGE_QUERY
from parley.api.schemas import CURSOR, NULLABLE_TIME, TIME, obj, page_of
from parley.integrations import applications as rules
from parley.integrations.organizations import Standing
from parley.isotime import iso
from parley.store.applications import Application, ApplicationChanges, NewApplication

blueprint = Blueprint("applications", __name__)

APPLICATION = obj(
    {
        "id": {"type": "integer", "minimum": 1, "description": "Pusher's app_id"},
        "name": {"type": "string"},
        "app_key": {"type": "string"},
        "app_secret": {
            "type": ["string", "null"],
            "description": "the organization's admins only; null for its other members",
        },
        "archived_at": NULLABLE_TIME,
        "organization": {"type": "string", "description": "the organization's slug"},
        "webhook_url": {"type": ["string", "null"]},
        "client_events": {"type": "boolean"},
        "max_connections": {"type": ["integer", "null"]},
        "webhook_batching": {"type": "boolean"},
        "webhook_subscription_count": {"type": "boolean"},
        "previous_secret_expires_at": NULLABLE_TIME,
        "created_at": TIME,
        "updated_at": TIME,
    }
)
SETTINGS: dict[str, Any] = {
    "webhook_url": {"type": ["string", "null"], "format": "uri"},
    "client_events": {"type": "boolean"},
    "max_connections": {"type": ["integer", "null"], "minimum": 0},
    "webhook_batching": {"type": "boolean", "description": "several events per webhook request"},
    "webhook_subscription_count": {
        "type": "boolean",
        "description": "send subscription_count webhooks",
    },
}
NAME = {"type": "string", "minLength": 1, "maxLength": rules.NAME_MAX_CHARS}
CREATE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": NAME, **SETTINGS},
}
PATCH_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"name": NAME, **SETTINGS, "archived": {"type": "boolean"}},
    "description": "archived: true closes the application's sockets and refuses its triggers",
}
APP_PATH = "/api/organizations/<slug>/applications/<app_key>"


def application_json(application: Application, *, with_secret: bool) -> dict[str, Any]:
    return {
        "id": application.id,
        "name": application.name,
        "app_key": application.app_key,
        "app_secret": application.app_secret if with_secret else None,
        "archived_at": iso(application.archived_at),
        "organization": application.organization_slug,
        "webhook_url": application.webhook_url,
        "client_events": application.client_events,
        "max_connections": application.max_connections,
        "webhook_batching": application.webhook_batching,
        "webhook_subscription_count": application.webhook_subscription_count,
        "previous_secret_expires_at": iso(application.previous_secret_expires_at),
        "created_at": iso(application.created_at),
        "updated_at": iso(application.updated_at),
    }


def _settings_errors(body: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    checks = (
        ("webhook_url", rules.check_webhook_url),
        ("client_events", rules.check_client_events),
        ("max_connections", rules.check_max_connections),
        ("webhook_batching", rules.check_flag),
        ("webhook_subscription_count", rules.check_flag),
    )
    for field, check in checks:
        if field in body and (problems := check(body[field])):
            errors[field] = problems
    return errors


async def _application(slug: str, app_key: str, need: Standing) -> tuple[Application, Standing]:
    organization, standing = await organization_for(slug, need)
    application = await parley_context().stores.applications.get(app_key)
    if application is None or application.organization_id != organization.id:
        raise not_found("no such application")
    return application, standing


@endpoint(
    blueprint,
    "POST",
    "/api/organizations/<slug>/applications",
    summary="Create an application: its numeric id, key and secret (the organization's admins)",
    auth=Auth.REGISTERED,
    body=CREATE_BODY,
    responses={
        201: ok("created", APPLICATION),
        403: ERROR_RESPONSE,
        409: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
    },
)
async def create_application(slug: str) -> tuple[Response, int]:
    organization, _ = await organization_for(slug, Standing.ADMIN)
    body = await json_object()
    errors = _settings_errors(body)
    if problems := rules.check_name(body.get("name")):
        errors["name"] = problems
    if errors:
        raise invalid(errors)
    context = parley_context()
    store = context.stores.applications
    limit = context.settings.integrations.max_applications_per_organization
    if await store.count_for(organization.id) >= limit:
        raise conflict(f"at most {limit} applications per organization")
    created = await store.create(
        NewApplication(
            organization_id=organization.id,
            name=str(body["name"]).strip(),
            app_key=rules.new_key(),
            app_secret=rules.new_secret(),
            webhook_url=body.get("webhook_url"),
            client_events=bool(body.get("client_events", False)),
            max_connections=body.get("max_connections"),
            webhook_batching=bool(body.get("webhook_batching", False)),
            webhook_subscription_count=bool(body.get("webhook_subscription_count", False)),
        )
    )
    return jsonify(application_json(created, with_secret=True)), 201


@endpoint(
    blueprint,
    "GET",
    "/api/organizations/<slug>/applications",
    summary="The organization's applications, oldest first (its members; secrets: its admins)",
    auth=Auth.REGISTERED,
    responses={
        200: ok(
            "all of them (at most integrations.max_applications_per_organization)",
            obj({"data": {"type": "array", "items": APPLICATION}, "next_cursor": CURSOR}),
        )
    },
)
async def list_applications(slug: str) -> Response:
    organization, standing = await organization_for(slug, Standing.MEMBER)
    found = await parley_context().stores.applications.of_organization(organization.id)
    admin = standing >= Standing.ADMIN
    return jsonify(
        {"data": [application_json(a, with_secret=admin) for a in found], "next_cursor": None}
    )


@endpoint(
    blueprint,
    "GET",
    "/api/admin/applications",
    summary="Every organization's applications, newest first, with secrets (site admins)",
    auth=Auth.ADMIN,
    query=PAGE_QUERY,
    responses={200: ok("a page", page_of(APPLICATION)), 422: ERROR_RESPONSE},
)
async def admin_applications() -> Response:
    limits = parley_context().settings.messages
    limit = query_int("limit", limits.page_default_limit, minimum=1, maximum=limits.page_max_limit)
    before_text = request.args.get("before") or None
    if before_text is not None and not (
        before_text.isascii() and before_text.isdigit() and len(before_text) <= 18
    ):
        raise invalid({"before": ["is not a valid cursor"]})
    before = int(before_text) if before_text is not None else None
    found = await parley_context().stores.applications.page(limit=limit + 1, before=before)
    page = found[:limit]
    cursor = str(page[-1].id) if len(found) > limit else None
    return jsonify(
        {"data": [application_json(a, with_secret=True) for a in page], "next_cursor": cursor}
    )


@endpoint(
    blueprint,
    "GET",
    APP_PATH,
    summary="An application (its organization's members; the secret: its admins)",
    auth=Auth.REGISTERED,
    responses={200: ok("the application", APPLICATION)},
)
async def get_application(slug: str, app_key: str) -> Response:
    application, standing = await _application(slug, app_key, Standing.MEMBER)
    return jsonify(application_json(application, with_secret=standing >= Standing.ADMIN))


@endpoint(
    blueprint,
    "PATCH",
    APP_PATH,
    summary="Change an application's name or settings, or archive it (the organization's admins)",
    auth=Auth.REGISTERED,
    body=PATCH_BODY,
    responses={200: ok("changed", APPLICATION), 403: ERROR_RESPONSE, 422: ERROR_RESPONSE},
)
async def patch_application(slug: str, app_key: str) -> Response:
    application, _ = await _application(slug, app_key, Standing.ADMIN)
    body = await json_object()
    errors = _settings_errors(body)
    if "name" in body and (problems := rules.check_name(body["name"])):
        errors["name"] = problems
    archived = body.get("archived")
    if "archived" in body and not isinstance(archived, bool):
        errors["archived"] = ["must be true or false"]
    if errors:
        raise invalid(errors)
    changes = ApplicationChanges(
        name=str(body["name"]).strip() if "name" in body else None,
        webhook_url=body.get("webhook_url"),
        clear_webhook_url="webhook_url" in body and body["webhook_url"] is None,
        client_events=body.get("client_events"),
        max_connections=body.get("max_connections"),
        clear_max_connections="max_connections" in body and body["max_connections"] is None,
        archived=archived if isinstance(archived, bool) else None,
        webhook_batching=body.get("webhook_batching"),
        webhook_subscription_count=body.get("webhook_subscription_count"),
    )
    context = parley_context()
    changed = await context.stores.applications.update(
        app_key, changes, current_principal().user.id
    )
    if changed is None:
        raise not_found("no such application")
    if changed.archived_at is not None and application.archived_at is None:
        context.app_sockets.archived([app_key])
    else:
        context.applications.forget([app_key])
    return jsonify(application_json(changed, with_secret=True))


@endpoint(
    blueprint,
    "POST",
    f"{APP_PATH}/secret",
    summary="Rotate the secret; the old one works for integrations.secret_grace_seconds more",
    auth=Auth.REGISTERED,
    responses={200: ok("the application with its new secret", APPLICATION), 403: ERROR_RESPONSE},
)
async def rotate_secret(slug: str, app_key: str) -> Response:
    await _application(slug, app_key, Standing.ADMIN)
    context = parley_context()
    grace = context.settings.integrations.secret_grace_seconds
    rotated = await context.stores.applications.rotate_secret(
        app_key, rules.new_secret(), grace, current_principal().user.id
    )
    if rotated is None:
        raise not_found("no such application")
    context.app_sockets.rotated(app_key, rotated.secret_version, grace)
    return jsonify(application_json(rotated, with_secret=True))
