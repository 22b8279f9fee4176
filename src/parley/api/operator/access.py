"""Who may use the console, and how each request proves it (docs/operators.md, "Signing in").

Two ways in, never a token in the URL (a URL ends up in histories, logs and Referer headers):

* **The console's session cookie.** `POST /debug/sign-in` takes the operator token
  (`debug.operator_token`), or an admin's e-mail and password, from the sign-in form's body. It
  is throttled like `POST /api/auth/login` (the same `AuthThrottle`: failures per account and per
  client address; for the token the "account" is the client's address, so nobody can lock the
  token out for everybody). On success the console keeps a session in memory and sets an
  HTTP-only, `SameSite=Strict` cookie (`Secure` over TLS) for `/debug` that lasts
  `debug.session_ttl_seconds` without a request and `debug.session_max_seconds` at most. In prod,
  signing in over plain HTTP is refused unless `debug.allow_insecure_console` is set.
  A request that changes something (the actions, signing out) must also carry the session's CSRF
  token (`X-CSRF-Token`, which the console's script reads from `GET /debug/session`), and is
  refused when the browser says it comes from another site (`Origin`, `Sec-Fetch-Site`).
* **`Authorization: Bearer`** with the operator token or an admin's access token, for scripts
  and Prometheus. No cookie is involved, so no CSRF token either; failures are throttled the same.

Any console request with a token-like query parameter (`?token=`) is refused outright (400), so
that a habit formed with the old console fails loudly instead of leaking.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from quart import after_this_request, request
from quart.wrappers.response import Response as QuartResponse
from werkzeug.sansio.response import Response
from werkzeug.wrappers.response import Response as WerkzeugResponse

from parley.accounts.client_ip import is_trusted_proxy
from parley.accounts.validation import check_email, normalize_email
from parley.api.account_common import enforce, invalid_credentials, request_ip
from parley.api.context import AppContext
from parley.api.endpoint import Auth, principal_for_token
from parley.api.errors import ApiError, forbidden, invalid, unauthorized
from parley.config import DebugSettings

COOKIE_NAME: Final = "parley_console"
COOKIE_PATH: Final = "/debug"
CSRF_HEADER: Final = "X-CSRF-Token"
TOKEN_PARAMETERS: Final = frozenset(
    {"token", "access_token", "operator_token", "auth_token", "bearer", "jwt"}
)
"""Query parameters refused on every console route: credentials never travel in a URL."""
MAX_TOKEN_CHARS: Final = 4096


@dataclass(frozen=True)
class Operator:
    """Who is acting, as the audit log records it."""

    via: str
    """`operator_token` or `admin`."""
    user_id: uuid.UUID | None
    username: str | None
    ip: str

    @property
    def label(self) -> str:
        return self.username if self.username is not None else "operator token"

    def as_dict(self) -> dict[str, object]:
        return {
            "via": self.via,
            "user_id": str(self.user_id) if self.user_id else None,
            "username": self.username,
            "label": self.label,
            "ip": self.ip,
        }


@dataclass(eq=False)
class ConsoleSession:
    """A signed-in browser: who, its CSRF token, and its clock readings."""

    key: str
    operator: Operator
    csrf_token: str
    signed_in_at: float
    last_seen: float
    cookie_sent_at: float


class ConsoleSessions:
    """The console's sessions, in memory, keyed by a hash of the cookie's secret.

    Bounded by `debug.max_sessions` (signing in past it ends the least recently used session).
    `clock` is monotonic seconds; tests move it to expire sessions.
    """

    def __init__(
        self, settings: DebugSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self.clock = clock
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, operator: Operator) -> tuple[str, ConsoleSession]:
        """A new session for `operator`: (the cookie's secret, the session)."""
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        session = ConsoleSession(_key(secret), operator, secrets.token_urlsafe(32), now, now, now)
        self._sessions[session.key] = session
        while len(self._sessions) > self._settings.max_sessions:
            self._sessions.popitem(last=False)
        return secret, session

    def find(self, secret: str | None) -> ConsoleSession | None:
        """The live session behind a cookie's secret, or None (unknown, forged or expired)."""
        if not secret or len(secret) > MAX_TOKEN_CHARS:
            return None
        key = _key(secret)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self.clock()
        settings = self._settings
        if (
            now - session.last_seen > settings.session_ttl_seconds
            or now - session.signed_in_at > settings.session_max_seconds
        ):
            del self._sessions[key]
            return None
        return session

    def touch(self, session: ConsoleSession) -> bool:
        """The session was used now; True when its cookie should be sent again (half its
        lifetime has passed since it was last sent)."""
        now = self.clock()
        session.last_seen = now
        self._sessions.move_to_end(session.key)
        if now - session.cookie_sent_at < self._settings.session_ttl_seconds / 2:
            return False
        session.cookie_sent_at = now
        return True

    def close(self, session: ConsoleSession) -> None:
        self._sessions.pop(session.key, None)


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class Gate:
    """Checks every console request (see the module docstring)."""

    def __init__(self, context: AppContext, sessions: ConsoleSessions) -> None:
        self._context = context
        self.sessions = sessions

    async def operator(self, *, unsafe: bool = False) -> Operator:
        """The caller of this request, or the refusal; `unsafe` for requests that change
        something (CSRF and origin checks for cookie sessions)."""
        refuse_tokens_in_url()
        header = request.headers.get("Authorization")
        if header is not None:
            return await self._bearer(header)
        session = self.session()
        if session is None:
            raise ApiError(401, "not_signed_in", "sign in at /debug first (or send a bearer token)")
        if unsafe:
            check_same_site()
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                raise ApiError(403, "csrf", f"the {CSRF_HEADER} header is missing or wrong")
        self.renew(session)
        return session.operator

    def session(self) -> ConsoleSession | None:
        """The console session of this request's cookie, if it is live."""
        return self.sessions.find(request.cookies.get(COOKIE_NAME))

    def renew(self, session: ConsoleSession) -> None:
        if not self.sessions.touch(session):
            return
        ttl = self._context.settings.debug.session_ttl_seconds
        secret = request.cookies.get(COOKIE_NAME, "")

        @after_this_request
        async def send_cookie(
            response: QuartResponse | WerkzeugResponse,
        ) -> QuartResponse | WerkzeugResponse:
            set_cookie(response, secret, ttl, secure=self.secure())
            return response

    def secure(self) -> bool:
        return is_secure(self._context.settings.server.trusted_proxies)

    async def sign_in(self, fields: dict[str, object]) -> tuple[str, ConsoleSession]:
        """Check the sign-in form's fields; the new session's cookie secret and the session."""
        refuse_tokens_in_url()
        check_same_site()
        context = self._context
        if (
            context.settings.server.env == "prod"
            and not self.secure()
            and not context.settings.debug.allow_insecure_console
        ):
            raise ApiError(
                403,
                "tls_required",
                "sign in over HTTPS (or set debug.allow_insecure_console)",
            )
        token, email, password = (fields.get(name) for name in ("token", "email", "password"))
        problems = {
            name: ["must be a string"]
            for name, value in (("token", token), ("email", email), ("password", password))
            if value is not None and not isinstance(value, str)
        }
        if problems:
            raise invalid(problems)
        ip = request_ip()
        if isinstance(token, str) and token:
            operator = self._by_operator_token(token, ip)
        elif isinstance(email, str) and email:
            secret = password if isinstance(password, str) else ""
            operator = await self._by_password(email, secret, ip)
        else:
            raise invalid({"token": ["give the operator token, or an admin's e-mail and password"]})
        return self.sessions.open(operator)

    def _by_operator_token(self, token: str, ip: str) -> Operator:
        throttle = self._context.throttle
        account = _token_account(ip)
        enforce(throttle.check_login(account, ip))
        expected = self._context.settings.debug.operator_token
        if (
            expected is None
            or len(token) > MAX_TOKEN_CHARS
            or not hmac.compare_digest(token.encode(), expected.encode())
        ):
            throttle.record_login_failure(account, ip)
            raise ApiError(401, "invalid_credentials", "wrong operator token")
        return Operator("operator_token", None, None, ip)

    async def _by_password(self, email: str, password: str, ip: str) -> Operator:
        context = self._context
        enforce(context.throttle.check_login(email, ip))
        limit = context.settings.auth.password_max_length
        user = None
        if not check_email(email) and len(password) <= limit:
            user = await context.stores.users.by_email(normalize_email(email))
        if user is None:
            await context.passwords.verify_dummy(password[:limit])
            context.throttle.record_login_failure(email, ip)
            raise invalid_credentials()
        if not (await context.passwords.verify(user.password_hash, password)).ok:
            context.throttle.record_login_failure(email, ip)
            raise invalid_credentials()
        if user.banned_at is not None or user.role != "admin":
            raise forbidden("only admins may use the operator console")
        return Operator("admin", user.id, user.username, ip)

    async def _bearer(self, header: str) -> Operator:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("operator token or admin token required")
        ip = request_ip()
        throttle = self._context.throttle
        account = _token_account(ip)
        enforce(throttle.check_login(account, ip))
        expected = self._context.settings.debug.operator_token
        if (
            expected is not None
            and len(token) <= MAX_TOKEN_CHARS
            and hmac.compare_digest(token.encode(), expected.encode())
        ):
            return Operator("operator_token", None, None, ip)
        try:
            principal = await principal_for_token(token)
        except ApiError:
            throttle.record_login_failure(account, ip)
            raise unauthorized("operator token or admin token required") from None
        if principal.level < Auth.ADMIN:
            raise forbidden("operators and admins only")
        return Operator("admin", principal.user.id, principal.user.username, ip)


def _token_account(ip: str) -> str:
    """The throttle's "account" for operator-token attempts: per client address, so that failed
    guesses from one place cannot lock the token out everywhere. A NUL cannot start an e-mail."""
    return f"\x00operator-token@{ip}"


def refuse_tokens_in_url() -> None:
    present = sorted(TOKEN_PARAMETERS.intersection(name.lower() for name in request.args))
    if present:
        raise ApiError(
            400,
            "token_in_url",
            "credentials are never accepted in the URL: sign in at /debug, or send "
            "Authorization: Bearer",
            fields={name: ["not accepted in the URL"] for name in present},
        )


def check_same_site() -> None:
    """Refuse a request the browser says comes from another site (CSRF's first line).

    `Sec-Fetch-Site` (set by the browser, never by a page) decides where it is sent; older
    browsers send only `Origin`, which must then name this host. Requests with neither (scripts,
    curl) pass: they carry no ambient cookie of a victim's browser.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        if fetch_site not in ("same-origin", "none"):
            raise ApiError(403, "cross_origin", "console requests must come from the console")
        return
    origin = request.headers.get("Origin")
    if origin is None:
        return
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        netloc = ""
    if not netloc or netloc.lower() != (request.host or "").lower():
        raise ApiError(403, "cross_origin", "console requests must come from the console")


def is_secure(trusted_proxies: tuple[str, ...]) -> bool:
    """The request came over TLS, to us or to a trusted proxy that says so."""
    if request.scheme in ("https", "wss"):
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return forwarded == "https" and is_trusted_proxy(request.remote_addr or "", trusted_proxies)


def set_cookie(response: Response, secret: str, ttl_seconds: float, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE_NAME,
        secret,
        max_age=int(ttl_seconds),
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="Strict")
