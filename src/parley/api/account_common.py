"""What the account blueprints share: user views and schemas, issuing sessions, the refresh cookie,
the client address, and nudging the running system (mailer, sockets)."""

from __future__ import annotations

import functools
import ipaddress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from quart import Response, jsonify, request

from parley.accounts import client_ip, hash_opaque, parse_string_fields
from parley.accounts.client_ip import parse_ip
from parley.accounts.mail import MailLinks
from parley.accounts.validation import check_password
from parley.api.body import json_object
from parley.api.context import parley_context
from parley.api.errors import ApiError, conflict, forbidden, invalid, rate_limited
from parley.api.schemas import NULLABLE_TIME, TIME, UUID, obj
from parley.isotime import iso
from parley.store.tokens import NewOneTimeToken
from parley.store.user_records import DuplicateUser

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable, Mapping

    from parley.accounts import Decision
    from parley.api.endpoint import Principal
    from parley.store.outbox import Mail
    from parley.store.tokens import ConfirmOutcome
    from parley.store.user_records import User

# --- schemas -------------------------------------------------------------------------------------

NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
# The fields of a new account, shared by self-registration and staff-created users.
ACCOUNT_FIELDS: dict[str, Any] = {
    "email": {"type": "string", "maxLength": 254, "description": "unique, case-insensitively"},
    "username": {
        "type": "string",
        "minLength": 3,
        "maxLength": 32,
        "pattern": "^[A-Za-z0-9][A-Za-z0-9_.\\-]*$",
    },
    "name": {"type": "string", "maxLength": 100},
    "subname": {"type": "string", "maxLength": 100},
    "job": {"type": "string", "maxLength": 100},
}
ROLE: dict[str, Any] = {"type": "string", "enum": ["registered", "moderator", "admin"]}
THEME: dict[str, Any] = {"type": "string", "enum": ["light", "dark", "system"]}

PUBLIC_USER: dict[str, Any] = obj(
    {
        "id": UUID,
        "username": {"type": "string"},
        "display_name": NULLABLE_STRING,
        "bio": NULLABLE_STRING,
        "name": NULLABLE_STRING,
        "subname": NULLABLE_STRING,
        "job": NULLABLE_STRING,
        "role": ROLE,
        "inserted_at": TIME,
    }
)
PRIVATE_USER: dict[str, Any] = obj(
    {
        **PUBLIC_USER["properties"],
        "email": {"type": "string"},
        "email_confirmed": {"type": "boolean"},
        "confirmed_at": NULLABLE_TIME,
        "settings": obj({"theme": THEME}),
        "updated_at": TIME,
    }
)
ADMIN_USER: dict[str, Any] = obj(
    {
        **PUBLIC_USER["properties"],
        "email": {"type": "string"},
        "confirmed_at": NULLABLE_TIME,
        "banned": {"type": "boolean"},
        "banned_at": NULLABLE_TIME,
        "updated_at": TIME,
    }
)
SESSION: dict[str, Any] = obj(
    {
        "user": PRIVATE_USER,
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer", "minimum": 0},
        "access_token_expires_at": TIME,
        "refresh_token": {"type": "string"},
        "refresh_token_expires_at": TIME,
    }
)
SESSION_RESPONSE_HEADERS_NOTE = (
    "The refresh token is also set as an HTTP-only, SameSite=Lax cookie on path /api/auth."
)

# --- views ---------------------------------------------------------------------------------------


def public_user_json(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "name": user.name,
        "subname": user.subname,
        "job": user.job,
        "role": user.role,
        "inserted_at": iso(user.inserted_at),
    }


def user_settings(user: User) -> dict[str, Any]:
    theme = user.settings.get("theme") if isinstance(user.settings, dict) else None
    return {"theme": theme if theme in ("light", "dark", "system") else "system"}


def private_user_json(user: User) -> dict[str, Any]:
    return {
        **public_user_json(user),
        "email": user.email,
        "email_confirmed": user.confirmed_at is not None,
        "confirmed_at": iso(user.confirmed_at),
        "settings": user_settings(user),
        "updated_at": iso(user.updated_at),
    }


def admin_user_json(user: User) -> dict[str, Any]:
    return {
        **public_user_json(user),
        "email": user.email,
        "confirmed_at": iso(user.confirmed_at),
        "banned": user.banned_at is not None,
        "banned_at": iso(user.banned_at),
        "updated_at": iso(user.updated_at),
    }


# --- sessions and the refresh cookie -------------------------------------------------------------


def _seconds_until(moment: datetime) -> int:
    return max(0, int((moment - datetime.now(UTC)).total_seconds()))


def session_response(
    user: User, refresh_token: str, refresh_expires_at: datetime, status: int = 200
) -> Response:
    """Sign an access token for `user` and answer it with `refresh_token` (body and cookie)."""
    access_token, access_expires_at = parley_context().tokens.issue_access(
        user.id, user.role, user.token_version
    )
    response = jsonify(
        {
            "user": private_user_json(user),
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": _seconds_until(access_expires_at),
            "access_token_expires_at": iso(access_expires_at),
            "refresh_token": refresh_token,
            "refresh_token_expires_at": iso(refresh_expires_at),
        }
    )
    response.status_code = status
    set_refresh_cookie(response, refresh_token, refresh_expires_at)
    return response


async def new_session(user: User, status: int = 200) -> Response:
    """A new refresh-token family for `user`, and the session response carrying it."""
    context = parley_context()
    refresh = context.tokens.issue_opaque("refresh")
    await context.stores.tokens.add_refresh_token(user.id, refresh.digest, refresh.expires_at)
    return session_response(user, refresh.plaintext, refresh.expires_at, status)


def _cookie_options() -> dict[str, Any]:
    return {"path": "/api/auth", "secure": request_is_tls(), "httponly": True, "samesite": "Lax"}


def set_refresh_cookie(response: Response, token: str, expires_at: datetime) -> None:
    response.set_cookie(
        parley_context().settings.auth.cookie_name,
        token,
        max_age=_seconds_until(expires_at),
        **_cookie_options(),
    )


def clear_refresh_cookie(response: Response) -> None:
    response.delete_cookie(parley_context().settings.auth.cookie_name, **_cookie_options())


async def optional_json_object() -> dict[str, Any]:
    """Like `json_object`, but an empty body reads as `{}` (refresh and logout may carry nothing
    but the cookie)."""
    raw = await request.get_data(cache=True, as_text=False)
    if not raw:
        return {}
    return await json_object()


def presented_refresh_token(body: dict[str, Any]) -> str | None:
    """The refresh token from the body (`refresh_token`) or, failing that, the cookie."""
    value = body.get("refresh_token")
    if value is not None and not isinstance(value, str):
        raise invalid({"refresh_token": ["must be a string"]})
    if value:
        return value
    cookie = request.cookies.get(parley_context().settings.auth.cookie_name)
    return cookie or None


# --- the client's address ------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _trusted_networks(
    trusted: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in trusted)


def _peer_is_trusted_proxy() -> bool:
    peer = parse_ip(request.remote_addr or "")
    trusted = parley_context().settings.server.trusted_proxies
    if peer is None or not trusted:
        return False
    return any(peer.version == n.version and peer in n for n in _trusted_networks(trusted))


def request_is_tls() -> bool:
    """HTTPS, directly or as reported by a trusted proxy (X-Forwarded-Proto)."""
    if request.scheme in ("https", "wss"):
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return _peer_is_trusted_proxy() and forwarded.split(",")[0].strip().lower() == "https"


def request_ip() -> str:
    """The client's address: the TCP peer, or what trusted proxies say (X-Forwarded-For)."""
    forwarded = ", ".join(request.headers.getlist("X-Forwarded-For")) or None
    return client_ip(
        request.remote_addr or "", forwarded, parley_context().settings.server.trusted_proxies
    )


def enforce(decision: Decision) -> None:
    """429 with Retry-After when the throttle refused."""
    if not decision.allowed:
        raise rate_limited(decision.retry_after_seconds)


# --- small shared rules --------------------------------------------------------------------------


def read_strings(
    body: dict[str, Any], required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> dict[str, str | None]:
    """String fields of a JSON object body, or a 422 naming each field of the wrong type."""
    parsed = parse_string_fields(body, required=required, optional=optional)
    if not parsed.ok:
        raise invalid(parsed.errors)
    return parsed.values


def require_interactive(principal: Principal) -> None:
    """Credential changes need a real sign-in, not an API-token session."""
    if principal.via_api_token is not None:
        raise forbidden("not allowed with an API-token session; sign in with a password")


def mail_links() -> MailLinks:
    return MailLinks.from_settings(parley_context().settings)


def wake_mailer() -> None:
    """Tell the Mailer a mail was queued (it would find it at its next poll anyway)."""
    parley_context().runtime.mailer.wake()


def revoke_sockets(user_id: uuid.UUID) -> None:
    """Close the user's sockets: their tokens were just revoked (token_version bumped)."""
    parley_context().sockets.revoke_user(user_id)


def invalid_credentials() -> ApiError:
    return ApiError(401, "invalid_credentials", "invalid e-mail or password")


async def create_account(
    *,
    email: str,
    username: str,
    password: str,
    profile: Mapping[str, str | None],
    confirmation_mail: Callable[[str], Mail],
) -> User:
    """Store a new user with its confirmation token and mail, in one transaction.

    `confirmation_mail` builds the mail from the token's plaintext (a self-registration gets the
    confirmation link, a user created by staff also gets the generated password). 409 when the
    e-mail address or the username is taken.
    """
    context = parley_context()
    users = context.stores.users
    if await users.email_taken(email):
        raise conflict("e-mail address already registered", {"email": ["has already been taken"]})
    password_hash = await context.passwords.hash(password)
    token = context.tokens.issue_opaque("confirm")
    try:
        user = await users.create(
            email=email,
            username=username,
            password_hash=password_hash,
            name=profile.get("name") or None,
            subname=profile.get("subname") or None,
            job=profile.get("job") or None,
            one_time=NewOneTimeToken("confirm", token.digest, token.expires_at),
            mail=confirmation_mail(token.plaintext),
        )
    except DuplicateUser as exc:
        raise conflict(
            f"{exc.field} already taken", {exc.field: ["has already been taken"]}
        ) from None
    wake_mailer()
    return user


# --- redeeming mailed tokens (the API and the pages of api/pages.py) -----------------------------


def _bad_token() -> ApiError:
    return invalid({"token": ["is invalid or has expired"]}, "invalid or expired token")


async def redeem_confirmation(token: str) -> ConfirmOutcome:
    """Use a mailed confirmation token: confirms the address, or applies an e-mail change.

    422 for an unknown, used or expired token; 409 when the new address was registered meanwhile
    (the token then stays unused).
    """
    try:
        outcome = await parley_context().stores.tokens.redeem_confirmation(hash_opaque(token))
    except DuplicateUser:
        raise conflict(
            "the new e-mail address was registered meanwhile", {"email": ["has already been taken"]}
        ) from None
    if outcome is None:
        raise _bad_token()
    return outcome


async def reset_password_with(token: str, password: str) -> User:
    """Set a new password with a mailed reset token, signing out every session and socket.

    422 naming `password` when it breaks the rules, or `token` when it is unknown, used or expired.
    """
    context = parley_context()
    problems = check_password(password, context.settings.auth)
    if problems:
        raise invalid({"password": problems})
    digest = hash_opaque(token)
    tokens = context.stores.tokens
    # Check first so a bad token costs no hashing; the reset below re-checks it atomically.
    if not await tokens.one_time_token_valid(digest, "reset"):
        raise _bad_token()
    user = await tokens.reset_password(digest, await context.passwords.hash(password))
    if user is None:
        raise _bad_token()
    revoke_sockets(user.id)
    return user
