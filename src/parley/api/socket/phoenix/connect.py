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
deleted. App-signed tokens (`app:{key}` topics) come with the integrations work.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Final
from urllib.parse import urlsplit

from parley.accounts import InvalidToken, TokenService
from parley.api.socket.core.principal import SocketPrincipal
from parley.api.socket.core.transport import Accepted, ConnectRequest, Refused
from parley.api.socket.phoenix.serializer import UnsupportedVsnError, serializer_for_vsn
from parley.config import Settings, SocketSettings
from parley.store.users import UserStore

log = logging.getLogger(__name__)

PHOENIX_SUBPROTOCOL: Final = "phoenix"
AUTH_TOKEN_PREFIX: Final = "base64url.bearer.phx."
MAX_TOKEN_CHARS: Final = 8192


class PhoenixConnect:
    """The upgrade decision of a Phoenix socket (an `Authorize` for the transports)."""

    def __init__(self, settings: Settings, tokens: TokenService, users: UserStore) -> None:
        self._settings = settings
        self._tokens = tokens
        self._users = users

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
        return Accepted(principal, serializer, subprotocol)

    async def principal_for(self, token: str) -> SocketPrincipal | None:
        """The principal a socket token stands for if it is still good, else None."""
        tokens, users = self._tokens, self._users
        try:
            claims = tokens.verify_access(token)
        except InvalidToken as exc:
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
            if claims.api_token_id is not None and not await users.api_token_live(
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
    sub-domains) or `//localhost:4000`; an omitted scheme or port matches any, and `*` allows
    every origin. An empty list allows any origin outside prod and only the request's own host in
    prod.
    """
    origin = request.origin
    if origin is None:
        return True
    try:
        parsed = urlsplit(origin)
        origin_host = (parsed.hostname or "").lower()
        origin_port = parsed.port
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
            want_port = want.port
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
