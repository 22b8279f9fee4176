"""The signed-in user's own account: profile and private settings, password, e-mail address."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify

from parley.accounts.mail import email_change_mail
from parley.accounts.validation import (
    BIO_MAX_CHARS,
    NAME_MAX_CHARS,
    check_email,
    check_password,
    normalize_email,
    validate_profile,
)
from parley.api.account_common import (
    PRIVATE_USER,
    THEME,
    enforce,
    mail_links,
    new_session,
    private_user_json,
    read_strings,
    request_ip,
    require_interactive,
    revoke_sockets,
    wake_mailer,
)
from parley.api.account_common import SESSION as SESSION_SCHEMA
from parley.api.body import json_object
from parley.api.context import parley_context
from parley.api.endpoint import ERROR_RESPONSE, Auth, current_principal, endpoint, ok
from parley.api.errors import conflict, invalid
from parley.api.schemas import obj
from parley.store.tokens import NewOneTimeToken
from parley.store.user_records import User

blueprint = Blueprint("me", __name__)

NULLABLE_NAME: dict[str, Any] = {"type": ["string", "null"], "maxLength": NAME_MAX_CHARS}
PROFILE_BODY: dict[str, Any] = {
    "type": "object",
    "description": "Only the fields present change; null clears a text field.",
    "properties": {
        "display_name": NULLABLE_NAME,
        "bio": {"type": ["string", "null"], "maxLength": BIO_MAX_CHARS},
        "name": NULLABLE_NAME,
        "subname": NULLABLE_NAME,
        "job": NULLABLE_NAME,
        "theme": THEME,
    },
}
PASSWORD_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["current_password", "password"],
    "properties": {
        "current_password": {"type": "string"},
        "password": {"type": "string", "minLength": 10, "maxLength": 256},
    },
}
EMAIL_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["email", "password"],
    "properties": {"email": {"type": "string", "maxLength": 254}, "password": {"type": "string"}},
}
EMAIL_PENDING = obj(
    {
        "status": {"type": "string", "enum": ["confirmation_sent"]},
        "pending_email": {"type": "string"},
    }
)


@endpoint(
    blueprint,
    "GET",
    "/api/me",
    summary="My account: public profile, e-mail and private settings",
    auth=Auth.REGISTERED,
    responses={200: ok("me", PRIVATE_USER)},
)
async def get_me() -> Response:
    return jsonify(private_user_json(current_principal().user))


@endpoint(
    blueprint,
    "PATCH",
    "/api/me",
    summary="Change my profile (display_name, bio, name, subname, job) and settings (theme)",
    auth=Auth.REGISTERED,
    body=PROFILE_BODY,
    responses={200: ok("me, changed", PRIVATE_USER), 422: ERROR_RESPONSE},
)
async def patch_me() -> Response:
    user = current_principal().user
    parsed = validate_profile(await json_object())
    if not parsed.ok:
        raise invalid(parsed.errors)
    changes: dict[str, Any] = {}
    for name in ("display_name", "bio", "name", "subname", "job"):
        if name in parsed.values:
            value = parsed.values[name]
            changes[name] = value if value else None  # "" clears like null
    if "theme" in parsed.values:
        changes["settings"] = {**user.settings, "theme": parsed.values["theme"]}
    if changes:
        user = await parley_context().stores.users.update_profile(user.id, changes)
    return jsonify(private_user_json(user))


async def _check_current_password(user: User, password: str, field: str) -> None:
    """A wrong current password is a 422 on `field`, and counts as a failed login (throttled)."""
    context = parley_context()
    ip = request_ip()
    enforce(context.throttle.check_login(user.email, ip))
    if len(password) > context.settings.auth.password_max_length:
        await context.passwords.verify_dummy(password[: context.settings.auth.password_max_length])
        ok_ = False
    else:
        ok_ = (await context.passwords.verify(user.password_hash, password)).ok
    if not ok_:
        context.throttle.record_login_failure(user.email, ip)
        raise invalid({field: ["is not correct"]}, "the password is not correct")


@endpoint(
    blueprint,
    "PATCH",
    "/api/me/password",
    summary="Change my password; signs out every other session and answers a fresh one",
    auth=Auth.REGISTERED,
    body=PASSWORD_BODY,
    responses={
        200: ok("a new session", SESSION_SCHEMA),
        403: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
        429: ERROR_RESPONSE,
    },
)
async def change_password() -> Response:
    principal = current_principal()
    require_interactive(principal)
    context = parley_context()
    values = read_strings(await json_object(), required=("current_password", "password"))
    password = values["password"] or ""
    problems = check_password(password, context.settings.auth)
    if problems:
        raise invalid({"password": problems})
    await _check_current_password(
        principal.user, values["current_password"] or "", "current_password"
    )
    user = await context.stores.users.set_password(
        principal.user.id, await context.passwords.hash(password), revoke_sessions=True
    )
    revoke_sockets(user.id)
    return await new_session(user)


@endpoint(
    blueprint,
    "PATCH",
    "/api/me/email",
    summary="Change my e-mail address: mails a confirmation link to the new address; the change "
    "applies when it is redeemed at POST /api/auth/confirm",
    auth=Auth.REGISTERED,
    body=EMAIL_BODY,
    responses={
        202: ok("confirmation sent to the new address", EMAIL_PENDING),
        403: ERROR_RESPONSE,
        409: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
        429: ERROR_RESPONSE,
    },
)
async def change_email() -> tuple[Response, int]:
    principal = current_principal()
    require_interactive(principal)
    context = parley_context()
    values = read_strings(await json_object(), required=("email", "password"))
    raw_email = values["email"] or ""
    problems = check_email(raw_email)
    if problems:
        raise invalid({"email": problems})
    email = normalize_email(raw_email)
    user = principal.user
    if email == normalize_email(user.email):
        raise invalid({"email": ["is already your address"]})
    await _check_current_password(user, values["password"] or "", "password")
    if await context.stores.users.email_taken(email, except_user=user.id):
        raise conflict("e-mail address already registered", {"email": ["has already been taken"]})
    token = context.tokens.issue_opaque("confirm")
    mail = email_change_mail(
        email,
        user.username,
        token.plaintext,
        links=mail_links(),
        ttl_seconds=context.settings.auth.confirm_ttl_seconds,
    )
    await context.stores.tokens.issue_one_time_token(
        user.id,
        NewOneTimeToken("email_change", token.digest, token.expires_at, {"email": email}),
        mail,
    )
    wake_mailer()
    return jsonify({"status": "confirmation_sent", "pending_email": email}), 202
