"""The user directory (public fields only) and accounts made by moderators (CompanyApi's flow)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quart import Blueprint, Response, jsonify, request

from parley.accounts import generate_password
from parley.accounts.mail import welcome_mail
from parley.accounts.validation import check_email, check_name, check_username, normalize_email
from parley.api.account_common import (
    ACCOUNT_FIELDS,
    ADMIN_USER,
    PUBLIC_USER,
    admin_user_json,
    create_account,
    mail_links,
    public_user_json,
    read_strings,
)
from parley.api.body import json_object, query_int
from parley.api.context import parley_context
from parley.api.endpoint import ERROR_RESPONSE, Auth, current_principal, endpoint, ok
from parley.api.errors import invalid, not_found
from parley.api.pagination import PAGE_QUERY, decode_cursor, encode_cursor
from parley.api.schemas import page_of

if TYPE_CHECKING:
    import uuid

blueprint = Blueprint("users", __name__)

CREATE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["email", "username"],
    "properties": ACCOUNT_FIELDS,
}


@endpoint(
    blueprint,
    "GET",
    "/api/users",
    summary="Registered users (not banned), newest first, public fields only",
    auth=Auth.REGISTERED,
    query=PAGE_QUERY,
    responses={200: ok("a page of users", page_of(PUBLIC_USER)), 422: ERROR_RESPONSE},
)
async def list_users() -> Response:
    context = parley_context()
    limits = context.settings.messages
    limit = query_int("limit", limits.page_default_limit, minimum=1, maximum=limits.page_max_limit)
    before = decode_cursor(request.args.get("before"))
    users = await context.stores.users.page(limit=limit, before=before)
    next_cursor = None
    if len(users) == limit:
        next_cursor = encode_cursor(users[-1].inserted_at, users[-1].id)
    return jsonify({"data": [public_user_json(u) for u in users], "next_cursor": next_cursor})


@endpoint(
    blueprint,
    "GET",
    "/api/users/<uuid:user_id>",
    summary="One user's public profile (banned users are 404, except to moderators)",
    auth=Auth.REGISTERED,
    responses={200: ok("the user", PUBLIC_USER)},
)
async def get_user(user_id: uuid.UUID) -> Response:
    user = await parley_context().stores.users.get(user_id)
    if user is None or (user.banned_at is not None and current_principal().level < Auth.MODERATOR):
        raise not_found("no such user")
    return jsonify(public_user_json(user))


@endpoint(
    blueprint,
    "POST",
    "/api/users",
    summary="Create a user with a generated password, mailed to them (moderators and admins)",
    auth=Auth.MODERATOR,
    body=CREATE_BODY,
    responses={
        201: ok("created; the password was mailed, never answered", ADMIN_USER),
        409: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
    },
)
async def create_user() -> tuple[Response, int]:
    principal = current_principal()
    context = parley_context()
    values = read_strings(
        await json_object(), required=("email", "username"), optional=("name", "subname", "job")
    )
    errors: dict[str, list[str]] = {}
    for field, problems in (
        ("email", check_email(values["email"] or "")),
        ("username", check_username(values["username"] or "")),
        *((name, check_name(values.get(name) or "")) for name in ("name", "subname", "job")),
    ):
        if problems:
            errors[field] = problems
    if errors:
        raise invalid(errors)
    email = normalize_email(values["email"] or "")
    username = values["username"] or ""
    password = generate_password()
    user = await create_account(
        email=email,
        username=username,
        password=password,
        profile=values,
        confirmation_mail=lambda token: welcome_mail(
            email,
            username,
            password,
            token,
            links=mail_links(),
            ttl_seconds=context.settings.auth.confirm_ttl_seconds,
            created_by=principal.user.username,
        ),
    )
    return jsonify(admin_user_json(user)), 201
