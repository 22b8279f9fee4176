"""Organizations and enrollments (DESIGN §4.2, ExPusherLite): REST handlers.

Who may do what is `parley.integrations.organizations` (members read, organization admins write,
site admins everything); anybody else gets 404 for an organization, as if it did not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

from quart import Blueprint, Response, jsonify, request

from parley.api.body import json_object, query_int
from parley.api.context import parley_context
from parley.api.endpoint import (
    ERROR_RESPONSE,
    NO_CONTENT,
    Auth,
    Principal,
    current_principal,
    endpoint,
    ok,
)
from parley.api.errors import ApiError, conflict, forbidden, invalid, not_found
from parley.api.pagination import PAGE_QUERY, decode_cursor, encode_cursor
from parley.api.schemas import TIME, UUID, obj, page_of
from parley.integrations.organizations import (
    Standing,
    check_name,
    check_slug,
    slugify,
    standing,
)
from parley.isotime import iso
from parley.store.organizations import (
    AlreadyMember,
    DuplicateSlug,
    LastAdmin,
    Member,
    Organization,
    UnknownUser,
)

blueprint = Blueprint("organizations", __name__)

ORGANIZATION = obj({"id": UUID, "name": {"type": "string"}, "slug": {"type": "string"},
                    "created_at": TIME, "updated_at": TIME})  # fmt: skip
MEMBER = obj(
    {
        "user_id": UUID,
        "username": {"type": "string"},
        "display_name": {"type": ["string", "null"]},
        "admin": {"type": "boolean"},
        "enrolled_at": TIME,
    }
)
NAME = {"type": "string", "minLength": 1, "maxLength": 120}
SLUG = {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"}
CREATE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": NAME, "slug": SLUG},
    "description": "slug: derived from the name when not given",
}
PATCH_BODY: dict[str, Any] = {"type": "object", "properties": {"name": NAME, "slug": SLUG}}
MEMBER_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["user_id"],
    "properties": {"user_id": UUID, "admin": {"type": "boolean"}},
}
ADMIN_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["admin"],
    "properties": {"admin": {"type": "boolean"}},
}


def organization_json(organization: Organization) -> dict[str, Any]:
    return {
        "id": str(organization.id),
        "name": organization.name,
        "slug": organization.slug,
        "created_at": iso(organization.created_at),
        "updated_at": iso(organization.updated_at),
    }


def member_json(member: Member) -> dict[str, Any]:
    return {
        "user_id": str(member.user_id),
        "username": member.username,
        "display_name": member.display_name,
        "admin": member.admin,
        "enrolled_at": iso(member.created_at),
    }


async def caller_standing(organization: Organization, principal: Principal) -> Standing:
    enrolled = await parley_context().stores.organizations.enrollment(
        organization.id, principal.user.id
    )
    return standing(enrolled, site_admin=principal.level >= Auth.ADMIN)


async def organization_for(slug: str, need: Standing) -> tuple[Organization, Standing]:
    """The organization `slug` for the caller, who needs at least `need` in it: 404 when they
    are no member (or there is none), 403 when a member needs to be an admin."""
    organization = await parley_context().stores.organizations.get(slug)
    if organization is None:
        raise not_found("no such organization")
    have = await caller_standing(organization, current_principal())
    if have is Standing.NONE:
        raise not_found("no such organization")
    if have < need:
        raise forbidden("only the organization's admins may do this")
    return organization, have


def _page_limit() -> int:
    limits = parley_context().settings.messages
    return query_int("limit", limits.page_default_limit, minimum=1, maximum=limits.page_max_limit)


async def _organizations_page(member_id: uuid.UUID | None) -> Response:
    limit = _page_limit()
    before = decode_cursor(request.args.get("before"))
    found = await parley_context().stores.organizations.page(
        member_id=member_id, limit=limit + 1, before=before
    )
    page, more = found[:limit], len(found) > limit
    cursor = encode_cursor(page[-1].created_at, page[-1].id) if more else None
    return jsonify({"data": [organization_json(o) for o in page], "next_cursor": cursor})


@endpoint(
    blueprint,
    "POST",
    "/api/organizations",
    summary="Create an organization; its creator is enrolled as its admin",
    auth=Auth.REGISTERED,
    body=CREATE_BODY,
    responses={201: ok("created", ORGANIZATION), 409: ERROR_RESPONSE, 422: ERROR_RESPONSE},
)
async def create_organization() -> tuple[Response, int]:
    body = await json_object()
    context = parley_context()
    errors: dict[str, list[str]] = {}
    name = body.get("name")
    if problems := check_name(name):
        errors["name"] = problems
    slug = body.get("slug")
    if slug is None and not errors:
        slug = slugify(str(name))
        if not slug:
            errors["slug"] = ["cannot be derived from the name; give one"]
    elif slug is not None and (problems := check_slug(slug)):
        errors["slug"] = problems
    if errors:
        raise invalid(errors)
    principal = current_principal()
    limit = context.settings.integrations.max_organizations_per_user
    if await context.stores.organizations.count_for_user(principal.user.id) >= limit:
        raise conflict(f"at most {limit} organizations per admin")
    try:
        created = await context.stores.organizations.create(
            str(name).strip(), str(slug), principal.user.id
        )
    except DuplicateSlug:
        raise conflict("this slug is taken", {"slug": ["is taken"]}) from None
    return jsonify(organization_json(created)), 201


@endpoint(
    blueprint,
    "GET",
    "/api/organizations",
    summary="The organizations I am enrolled in (site admins: all), newest first",
    auth=Auth.REGISTERED,
    query=PAGE_QUERY,
    responses={200: ok("a page", page_of(ORGANIZATION)), 422: ERROR_RESPONSE},
)
async def list_organizations() -> Response:
    principal = current_principal()
    return await _organizations_page(None if principal.level >= Auth.ADMIN else principal.user.id)


@endpoint(
    blueprint,
    "GET",
    "/api/admin/organizations",
    summary="Every organization, newest first (site admins)",
    auth=Auth.ADMIN,
    query=PAGE_QUERY,
    responses={200: ok("a page", page_of(ORGANIZATION)), 422: ERROR_RESPONSE},
)
async def admin_organizations() -> Response:
    return await _organizations_page(None)


@endpoint(
    blueprint,
    "GET",
    "/api/organizations/<slug>",
    summary="An organization (its members and site admins)",
    auth=Auth.REGISTERED,
    responses={200: ok("the organization", ORGANIZATION)},
)
async def get_organization(slug: str) -> Response:
    organization, _ = await organization_for(slug, Standing.MEMBER)
    return jsonify(organization_json(organization))


@endpoint(
    blueprint,
    "PATCH",
    "/api/organizations/<slug>",
    summary="Rename an organization or change its slug (its admins)",
    auth=Auth.REGISTERED,
    body=PATCH_BODY,
    responses={
        200: ok("changed", ORGANIZATION),
        403: ERROR_RESPONSE,
        409: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
    },
)
async def patch_organization(slug: str) -> Response:
    organization, _ = await organization_for(slug, Standing.ADMIN)
    body = await json_object()
    errors: dict[str, list[str]] = {}
    name, new_slug = body.get("name"), body.get("slug")
    if name is not None and (problems := check_name(name)):
        errors["name"] = problems
    if new_slug is not None and (problems := check_slug(new_slug)):
        errors["slug"] = problems
    if errors:
        raise invalid(errors)
    context = parley_context()
    try:
        changed = await context.stores.organizations.update(
            organization.id,
            name=str(name).strip() if name is not None else None,
            slug=new_slug,
        )
    except DuplicateSlug:
        raise conflict("this slug is taken", {"slug": ["is taken"]}) from None
    if changed is None:
        raise not_found("no such organization")
    if changed.slug != organization.slug:  # the trigger URLs of its applications moved
        applications = await context.stores.applications.of_organization(organization.id)
        context.applications.forget(a.app_key for a in applications)
    return jsonify(organization_json(changed))


@endpoint(
    blueprint,
    "DELETE",
    "/api/organizations/<slug>",
    summary="Delete an organization with its applications (their sockets close) (its admins)",
    auth=Auth.REGISTERED,
    responses={204: NO_CONTENT, 403: ERROR_RESPONSE},
)
async def delete_organization(slug: str) -> tuple[str, int]:
    organization, _ = await organization_for(slug, Standing.ADMIN)
    context = parley_context()
    app_keys = await context.stores.organizations.delete(organization.id)
    context.app_sockets.archived(app_keys)
    return "", 204


@endpoint(
    blueprint,
    "GET",
    "/api/organizations/<slug>/members",
    summary="An organization's members, newest enrollment first (its members)",
    auth=Auth.REGISTERED,
    query=PAGE_QUERY,
    responses={200: ok("a page", page_of(MEMBER)), 422: ERROR_RESPONSE},
)
async def list_members(slug: str) -> Response:
    organization, _ = await organization_for(slug, Standing.MEMBER)
    limit = _page_limit()
    before = decode_cursor(request.args.get("before"))
    found = await parley_context().stores.organizations.members(
        organization.id, limit=limit + 1, before=before
    )
    page, more = found[:limit], len(found) > limit
    cursor = encode_cursor(page[-1].created_at, page[-1].user_id) if more else None
    return jsonify({"data": [member_json(m) for m in page], "next_cursor": cursor})


def _admin_flag(body: dict[str, Any], *, required: bool) -> bool:
    admin = body.get("admin")
    if admin is None and not required:
        return False
    if not isinstance(admin, bool):
        raise invalid({"admin": ["must be true or false"]})
    return admin


@endpoint(
    blueprint,
    "POST",
    "/api/organizations/<slug>/members",
    summary="Enroll a user, as an admin or not (its admins)",
    auth=Auth.REGISTERED,
    body=MEMBER_BODY,
    responses={
        201: ok("enrolled", MEMBER),
        403: ERROR_RESPONSE,
        409: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
    },
)
async def add_member(slug: str) -> tuple[Response, int]:
    organization, _ = await organization_for(slug, Standing.ADMIN)
    body = await json_object()
    try:
        user_id = uuid.UUID(str(body.get("user_id")))
    except ValueError:
        raise invalid({"user_id": ["must be a user id (a UUID)"]}) from None
    admin = _admin_flag(body, required=False)
    try:
        member = await parley_context().stores.organizations.add_member(
            organization.id, user_id, admin
        )
    except UnknownUser:
        raise invalid({"user_id": ["no such user"]}) from None
    except AlreadyMember:
        raise conflict("already a member") from None
    return jsonify(member_json(member)), 201


def _path_user(user_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(user_id)
    except ValueError:
        raise not_found("no such member") from None


@endpoint(
    blueprint,
    "PATCH",
    "/api/organizations/<slug>/members/<user_id>",
    summary="Make a member an admin or not; the last admin stays one (409) (its admins)",
    auth=Auth.REGISTERED,
    body=ADMIN_BODY,
    responses={
        200: ok("changed", MEMBER),
        403: ERROR_RESPONSE,
        409: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
    },
)
async def patch_member(slug: str, user_id: str) -> Response:
    organization, _ = await organization_for(slug, Standing.ADMIN)
    member_id = _path_user(user_id)
    admin = _admin_flag(await json_object(), required=True)
    try:
        member = await parley_context().stores.organizations.set_admin(
            organization.id, member_id, admin
        )
    except LastAdmin:
        raise _last_admin() from None
    if member is None:
        raise not_found("no such member")
    return jsonify(member_json(member))


@endpoint(
    blueprint,
    "DELETE",
    "/api/organizations/<slug>/members/<user_id>",
    summary="Unenroll a member (its admins; members may leave); the last admin stays (409)",
    auth=Auth.REGISTERED,
    responses={204: NO_CONTENT, 403: ERROR_RESPONSE, 409: ERROR_RESPONSE},
)
async def remove_member(slug: str, user_id: str) -> tuple[str, int]:
    member_id = _path_user(user_id)
    leaving = member_id == current_principal().user.id
    organization, _ = await organization_for(slug, Standing.MEMBER if leaving else Standing.ADMIN)
    try:
        removed = await parley_context().stores.organizations.remove_member(
            organization.id, member_id
        )
    except LastAdmin:
        raise _last_admin() from None
    if not removed:
        raise not_found("no such member")
    return "", 204


def _last_admin() -> ApiError:
    return ApiError(409, "last_admin", "an organization keeps at least one admin")
