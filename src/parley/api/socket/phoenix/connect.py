"""Deciding whether an upgrade request becomes a socket: vsn, Origin, token (PHOENIX_PROTOCOL §3).

`PhoenixConnect` runs the checks in Phoenix's order (§3.1): origin, auth token from the
`Sec-WebSocket-Protocol` offer, sub-protocol, `vsn`, then the application's connect (our token
check). Every refusal is an HTTP status answered before the upgrade; the body is empty, as
browsers show nothing of it anyway (§3.4).

Tokens (DESIGN §5): the `token` query parameter, or phoenix.js's `authToken`, which travels as
the sub-protocol `base64url.bearer.phx.<standard base64 without padding>` (§3.2). Accepted kinds:

* an access token or an API-session token (`TokenService.verify_access`): the user may join
  whatever the channel rules allow;
* a conversation channel token (`TokenService.verify_channel`): the socket may join only that
  conversation's topic.

Both are refused when expired, when the user is banned or gone, or when the user's token_version
moved on (logout_all, password change, ban), and an API-session token also when its API token was
deleted.

* an end-user token signed by an application (DESIGN §4.2; a `kid` that is none of our keys but an
  application's key, `parley.integrations.end_users`): the socket is confined to that
  application's topics (`app:{key}...`) and counts toward its connection quota, refused with 429
  when the quota is full.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from parley.accounts import InvalidToken, TokenService
from parley.api.socket.core.principal import SocketPrincipal
from parley.api.socket.core.transport import Accepted, ConnectRequest, Refused
from parley.api.socket.phoenix.serializer import UnsupportedVsnError, serializer_for_vsn
from parley.config import Settings, SocketSettings
from parley.integrations.end_users import EndUser, EndUsers
from parley.integrations.signing import BadToken
from parley.store.tokens import TokenStore
from parley.store.users import UserStore

log = logging.getLogger(__name__)

PHOENIX_SUBPROTOCOL: Final = "phoenix"
AUTH_TOKEN_PREFIX: Final = "base64url.bearer.phx."
MAX_TOKEN_CHARS: Final = 8192
_DEFAULT_PORTS: Final = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class PhoenixConnect:
    """The upgrade decision of a Phoenix socket (an `Authorize` for the transports)."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenService,
        users: UserStore,
        api_tokens: TokenStore,
        end_users: EndUsers,
        sockets_in: Callable[[str], int],
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._users = users
        self._api_tokens = api_tokens
        self._end_users = end_users
        self._sockets_in = sockets_in
        """Sockets open in a namespace (`SocketHub.namespace_count`), for the quota."""

    async def __call__(self, request: ConnectRequest) -> Accepted | Refused:
        """Accept or refuse an upgrade; never raises for anything the client sent."""
        settings = self._settings
        if not origin_allowed(request, settings.socket, prod=settings.server.env == "prod"):
            return Refused(403, "origin")
        auth_token, subprotocol = _subprotocol_token(request.subprotocols)
        if any(key.startswith("vsn[") for key in request.query):  # vsn[]=x: not a string (§2.3)
            return Refused(403, "vsn")
        try:
            serializer = serializer_for_vsn(request.query.get("vsn"))
        except UnsupportedVsnError:
            return Refused(403, "vsn")
        token = auth_token if auth_token is not None else request.query.get("token")
        if not token or len(token) > MAX_TOKEN_CHARS:
            return Refused(403, "no_token")
        principal = await self.principal_for(token)
        if principal is None:
            return Refused(403, "token")
        grant = principal.grant
        if (
            isinstance(grant, EndUser)
            and grant.max_connections is not None
            and self._sockets_in(grant.namespace) >= grant.max_connections
        ):
            # Checked with no await before the session opens (and counts), so never overshot.
            return Refused(429, "app_quota")
        return Accepted(principal, serializer, subprotocol)

    async def principal_for(self, token: str) -> SocketPrincipal | None:
        """The principal a socket token stands for if it is still good, else None."""
        tokens, users = self._tokens, self._users
        try:
            claims = tokens.verify_access(token)
        except InvalidToken as exc:
            if exc.reason == "unknown_kid":
                return await self._end_user(token)
            if exc.reason != "wrong_kind":
                return None
        else:
            user = await users.get(claims.user_id)
            if (
                user is None
                or user.banned_at is not None
                or user.token_version != claims.token_version
            ):
                return None
            if claims.api_token_id is not None and not await self._api_tokens.api_token_live(
                claims.api_token_id
            ):
                return None
            return SocketPrincipal(
                user.id, user.role, user.username, claims.kind, token_version=user.token_version
            )
        try:
            channel = tokens.verify_channel(token)
        except InvalidToken:
            return None
        user = await users.get(channel.user_id)
        if (
            user is None
            or user.banned_at is not None
            or user.token_version != channel.token_version
        ):
            return None
        return SocketPrincipal(
            user.id,
            user.role,
            user.username,
            "channel",
            only_topic=f"conversation:{channel.conversation_id}",
            token_version=user.token_version,
        )

    async def _end_user(self, token: str) -> SocketPrincipal | None:
        try:
            end_user = await self._end_users.verify(token)
        except BadToken as exc:
            log.debug("end-user token refused: %s", exc)
            return None
        return SocketPrincipal(
            end_user_id(end_user),
            "end_user",
            end_user.subject,
            "end_user",
            namespace=end_user.namespace,
            grant=end_user,
        )


def end_user_id(end_user: EndUser) -> uuid.UUID:
    """A stable id for an application's end user (they have no account, hence no row): the
    socket layer indexes sockets by user id (`SocketHub.close_user`)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"parley:{end_user.app_key}:{end_user.subject}")


def _subprotocol_token(offered: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(decoded auth token or None, the sub-protocol to select or None), per §3.2.

    The token entry is standard base64 without padding despite its `base64url` label; `-`/`_`
    are accepted too. An undecodable entry yields an empty token (refused later as missing).
    """
    token: str | None = None
    for entry in offered:
        if entry.startswith(AUTH_TOKEN_PREFIX):
            encoded = entry[len(AUTH_TOKEN_PREFIX) :].translate(str.maketrans("-_", "+/"))
            try:
                raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
                token = raw.decode("latin-1")
            except (binascii.Error, ValueError):
                token = ""
    selected = PHOENIX_SUBPROTOCOL if PHOENIX_SUBPROTOCOL in offered else None
    return token, selected


def origin_allowed(request: ConnectRequest, settings: SocketSettings, *, prod: bool) -> bool:
    """Phoenix's `check_origin` (§3.3) over `socket.allowed_origins`.

    No `Origin` header: allowed (native and server-side clients send none). Entries are origins
    such as `https://chat.example.com`, `//*.example.org` (any scheme, that domain and its
    sub-domains) or `//localhost:4000`; an omitted scheme matches any, an omitted port is the
    scheme's default when the entry names one (as Phoenix's `URI.parse` makes it: so
    `https://chat.example.com` does not admit `https://chat.example.com:8443`, another origin)
    and any port otherwise, and `*` allows every origin. An empty list allows any origin outside
    prod and only the request's own host in prod.
    """
    origin = request.origin
    if origin is None:
        return True
    try:
        parsed = urlsplit(origin)
        origin_host = (parsed.hostname or "").lower()
        origin_port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme)
    except ValueError:
        return False
    if not origin_host:
        return False
    allowed = settings.allowed_origins
    if not allowed:
        if not prod:
            return True
        host = request.host or ""
        try:
            own = (urlsplit(f"//{host}").hostname or "").lower()
        except ValueError:
            return False
        return own == origin_host
    for entry in allowed:
        if entry == "*":
            return True
        try:
            want = urlsplit(entry if "//" in entry else f"//{entry}")
            want_host = (want.hostname or "").lower()
            want_port = want.port or (_DEFAULT_PORTS.get(want.scheme) if want.scheme else None)
        except ValueError:
            continue
        if want.scheme and want.scheme != parsed.scheme:
            continue
        if want_port is not None and want_port != origin_port:
            continue
        if want_host.startswith("*."):
            domain = want_host[2:]
            if origin_host == domain or origin_host.endswith("." + domain):
                return True
        elif want_host == origin_host:
            return True
    return False
