"""Sign-up, sign-in and sessions (DESIGN §4): register, confirm, login, refresh, logout, passwords.

Sessions are a short-lived access JWT (`auth.access_ttl_seconds`) plus an opaque refresh token
(`auth.refresh_ttl_seconds`) that rotates on every use; presenting a used refresh token again means
it leaked, so its whole family is revoked. A token revoked before it was used (by logout,
logout_all, a password change, a ban, or a reuse in its family) is refused naming that cause. The
refresh token travels in the body (non-browser clients) and in an HTTP-only SameSite=Lax cookie on
`/api/auth` (browsers); refresh and logout read either. See docs/accounts.md for the reasoning
behind each answer.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify

from parley.accounts import hash_opaque
from parley.accounts.mail import confirm_mail, password_reset_mail
from parley.accounts.validation import (
    check_email,
    normalize_email,
    validate_registration,
)
from parley.api.account_common import (
    ACCOUNT_FIELDS,
    PRIVATE_USER,
    SESSION,
    clear_refresh_cookie,
    create_account,
    enforce,
    invalid_credentials,
    mail_links,
    new_session,
    optional_json_object,
    presented_refresh_token,
    private_user_json,
    read_strings,
    redeem_confirmation,
    request_ip,
    reset_password_with,
    revoke_sockets,
    session_response,
    wake_mailer,
)
from parley.api.body import json_object
from parley.api.context import parley_context
from parley.api.endpoint import (
    ERROR_RESPONSE,
    NO_CONTENT,
    Auth,
    current_principal,
    endpoint,
    ok,
)
from parley.api.errors import ApiError, invalid
from parley.api.schemas import obj
from parley.store.tokens import NewOneTimeToken

blueprint = Blueprint("auth", __name__)

STRING: dict[str, Any] = {"type": "string"}

REGISTER_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["email", "password", "username"],
    "properties": {
        **ACCOUNT_FIELDS,
        "password": {"type": "string", "minLength": 10, "maxLength": 256},
    },
}
LOGIN_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["email", "password"],
    "properties": {"email": STRING, "password": STRING},
}
TOKEN_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["token"],
    "properties": {"token": STRING},
}
REFRESH_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "refresh_token": {
            "type": "string",
            "description": "omit to use the refresh cookie",
        }
    },
}
FORGOT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["email"],
    "properties": {"email": STRING},
}
RESET_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["token", "password"],
    "properties": {
        "token": STRING,
        "password": {"type": "string", "minLength": 10, "maxLength": 256},
    },
}
ACCEPTED = obj({"status": {"type": "string"}})
CONFIRMED = obj(
    {"status": {"type": "string", "enum": ["confirmed", "email_changed"]}, "user": PRIVATE_USER}
)


@endpoint(
    blueprint,
    "POST",
    "/api/auth/register",
    summary="Create an account; answers the user, an access token and a refresh token "
    "(also as an HTTP-only cookie), and mails a confirmation link",
    auth=Auth.ANONYMOUS,
    body=REGISTER_BODY,
    responses={
        201: ok("registered and signed in", SESSION),
        409: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
        429: ERROR_RESPONSE,
    },
)
async def register() -> Response:
    context = parley_context()
    enforce(context.throttle.hit_ip("register", request_ip()))
    parsed = validate_registration(await json_object(), context.settings.auth)
    if not parsed.ok:
        raise invalid(parsed.errors)
    email = parsed.require("email")
    username = parsed.require("username")
    user = await create_account(
        email=email,
        username=username,
        password=parsed.require("password"),
        profile=parsed.values,
        confirmation_mail=lambda token: confirm_mail(
            email,
            username,
            token,
            links=mail_links(),
            ttl_seconds=context.settings.auth.confirm_ttl_seconds,
        ),
    )
    return await new_session(user, status=201)


@endpoint(
    blueprint,
    "POST",
    "/api/auth/confirm",
    summary="Redeem a mailed confirmation token: confirms the address, or applies an e-mail change",
    auth=Auth.ANONYMOUS,
    body=TOKEN_BODY,
    responses={
        200: ok("confirmed", CONFIRMED),
        409: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
    },
)
async def confirm() -> Response:
    token = read_strings(await json_object(), required=("token",))["token"] or ""
    outcome = await redeem_confirmation(token)
    status = "confirmed" if outcome.purpose == "confirm" else "email_changed"
    return jsonify({"status": status, "user": private_user_json(outcome.user)})


@endpoint(
    blueprint,
    "POST",
    "/api/auth/login",
    summary="Sign in with e-mail and password; answers a new session",
    auth=Auth.ANONYMOUS,
    body=LOGIN_BODY,
    responses={
        200: ok("signed in", SESSION),
        401: ERROR_RESPONSE,
        403: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
        429: ERROR_RESPONSE,
    },
)
async def login() -> Response:
    context = parley_context()
    values = read_strings(await json_object(), required=("email", "password"))
    email, password = values["email"] or "", values["password"] or ""
    ip = request_ip()
    enforce(context.throttle.check_login(email, ip))
    auth = context.settings.auth
    # Malformed addresses and overlong passwords fail like a wrong password, after the same work.
    user = None
    if not check_email(email) and len(password) <= auth.password_max_length:
        user = await context.stores.users.by_email(normalize_email(email))
    if user is None:
        await context.passwords.verify_dummy(password[: auth.password_max_length])
        context.throttle.record_login_failure(email, ip)
        raise invalid_credentials()
    result = await context.passwords.verify(user.password_hash, password)
    if not result.ok:
        context.throttle.record_login_failure(email, ip)
        raise invalid_credentials()
    if user.banned_at is not None:
        raise ApiError(403, "banned", "this account is banned")
    if result.needs_rehash:
        user = await context.stores.users.set_password(
            user.id, await context.passwords.hash(password), revoke_sessions=False
        )
    return await new_session(user)


@endpoint(
    blueprint,
    "POST",
    "/api/auth/refresh",
    summary="Exchange a refresh token (body or cookie) for a new session; the old token is used up",
    auth=Auth.ANONYMOUS,
    body=REFRESH_BODY,
    body_required=False,
    responses={200: ok("a new session", SESSION), 401: ERROR_RESPONSE, 422: ERROR_RESPONSE},
)
async def refresh() -> Response:
    context = parley_context()
    presented = presented_refresh_token(await optional_json_object())
    if presented is None:
        raise _refused("no refresh token (body refresh_token or cookie)")
    successor = context.tokens.issue_opaque("refresh")
    outcome = await context.stores.tokens.rotate_refresh_token(
        hash_opaque(presented), successor.digest, successor.expires_at
    )
    if outcome.user is None:
        if outcome.reason == "reused":
            raise _refused("refresh token reuse detected: the session was revoked")
        if outcome.reason == "revoked":
            raise _refused(
                _REVOKED_BY.get(outcome.revoked_by, "the refresh token was revoked; sign in again"),
                code="refresh_token_revoked",
            )
        raise _refused("the refresh token is invalid or expired")
    return session_response(outcome.user, successor.plaintext, successor.expires_at)


_REVOKED_BY: dict[str | None, str] = {
    "logout": "the refresh token was revoked by logout; sign in again",
    "logout_all": "the refresh token was revoked by logout_all (signed out everywhere); sign in "
    "again",
    "password": "the refresh token was revoked by a password change or reset; sign in again",
    "ban": "the refresh token was revoked: the account is banned",
    "reuse": "the refresh token was revoked because an older token of its session was used again "
    "(reuse detected); sign in again",
}
"""What a token revoked before it was used is answered, by `refresh_tokens.revoked_reason`: a
logout is not a reuse, and the client should hear which it was."""


def _refused(message: str, *, code: str = "invalid_refresh_token") -> ApiError:
    """401 for a bad refresh token; the response also clears the cookie (see the after hook)."""
    return ApiError(401, code, message, headers={"Set-Cookie": _expired_cookie_header()})


def _expired_cookie_header() -> str:
    response = Response("")
    clear_refresh_cookie(response)
    return response.headers["Set-Cookie"]


@endpoint(
    blueprint,
    "POST",
    "/api/auth/logout",
    summary="Sign out this session: revokes the refresh token's family (body or cookie) and clears "
    "the cookie; always 204",
    auth=Auth.ANONYMOUS,
    body=REFRESH_BODY,
    body_required=False,
    responses={204: NO_CONTENT, 422: ERROR_RESPONSE},
)
async def logout() -> Response:
    context = parley_context()
    presented = presented_refresh_token(await optional_json_object())
    if presented is not None:
        await context.stores.tokens.revoke_refresh_family_of(hash_opaque(presented))
    response = Response("", status=204)
    clear_refresh_cookie(response)
    return response


@endpoint(
    blueprint,
    "POST",
    "/api/auth/logout_all",
    summary="Sign out everywhere: every access and refresh token of the caller stops working now",
    auth=Auth.REGISTERED,
    responses={204: NO_CONTENT},
)
async def logout_all() -> Response:
    user = current_principal().user
    await parley_context().stores.users.bump_token_version(user.id)
    revoke_sockets(user.id)
    response = Response("", status=204)
    clear_refresh_cookie(response)
    return response


@endpoint(
    blueprint,
    "POST",
    "/api/auth/password/forgot",
    summary="Mail a password-reset link if the address has an account; always 202",
    auth=Auth.ANONYMOUS,
    body=FORGOT_BODY,
    responses={202: ok("accepted", ACCEPTED), 422: ERROR_RESPONSE, 429: ERROR_RESPONSE},
)
async def forgot_password() -> tuple[Response, int]:
    context = parley_context()
    enforce(context.throttle.hit_ip("forgot_password", request_ip()))
    email = read_strings(await json_object(), required=("email",))["email"] or ""
    if not check_email(email):
        user = await context.stores.users.by_email(normalize_email(email))
        if user is not None and user.banned_at is None:
            token = context.tokens.issue_opaque("password_reset")
            mail = password_reset_mail(
                user.email,
                user.username,
                token.plaintext,
                links=mail_links(),
                ttl_seconds=context.settings.auth.password_reset_ttl_seconds,
            )
            await context.stores.tokens.issue_one_time_token(
                user.id, NewOneTimeToken("reset", token.digest, token.expires_at), mail
            )
            wake_mailer()
    return jsonify({"status": "accepted"}), 202


@endpoint(
    blueprint,
    "POST",
    "/api/auth/password/reset",
    summary="Set a new password with a mailed reset token (single use, 1 hour); signs out every "
    "session",
    auth=Auth.ANONYMOUS,
    body=RESET_BODY,
    responses={204: NO_CONTENT, 422: ERROR_RESPONSE},
)
async def reset_password() -> Response:
    values = read_strings(await json_object(), required=("token", "password"))
    await reset_password_with(values["token"] or "", values["password"] or "")
    response = Response("", status=204)
    clear_refresh_cookie(response)
    return response
