"""End users of an application: who an application-signed token stands for, and what they may
join (DESIGN §4.2).

End users have no Parley account. The application's backend signs each of them a token
(`signing.sign_end_user_token`, or any JWT library: HS256 with the app secret, header `kid` =
the app key); `EndUsers.verify` checks it against the application's accepted secrets (from the
in-memory directory: no query on the hot path) and the token rules, and yields an `EndUser`.

With one, a socket may join `app:{key}` (the broadcast topic), `app:{key}:{channel}` when the
token's `channels` allow it (`topics.channel_allowed`), and its own `app:{key}:user:{sub}`;
nothing else, and nothing of another application (`join_refusal`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from parley.integrations import topics
from parley.integrations.applications import accepted_secrets
from parley.integrations.signing import (
    BadToken,
    TokenLimits,
    token_app_key,
    verify_end_user_token,
)

if TYPE_CHECKING:
    from parley.config import IntegrationsSettings
    from parley.integrations.directory import ApplicationDirectory


@dataclass(frozen=True, slots=True)
class EndUser:
    """A socket's verified end user: which application, who, and what their token allows."""

    app_id: int
    app_key: str
    subject: str
    channels: tuple[str, ...] | None
    user_info: dict[str, Any] | None
    secret_version: int
    """The rotation count of the secret that signed the token (retired secrets close sockets)."""
    max_connections: int | None
    """The application's quota of end-user sockets on this node (None: none)."""

    @property
    def namespace(self) -> str:
        return topics.namespace(self.app_key)


class UnknownApplication(BadToken):
    """The token names no application, or an archived one."""


class EndUsers:
    """Verifies end-user tokens against the applications of `directory`."""

    def __init__(
        self,
        directory: ApplicationDirectory,
        settings: IntegrationsSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._clock = clock
        self.max_channel_chars = settings.max_channel_name_chars
        self._limits = TokenLimits(
            max_lifetime_seconds=settings.end_user_token_max_seconds,
            max_subject_chars=settings.max_subject_chars,
            max_user_info_bytes=settings.max_user_info_bytes,
            max_channels=settings.max_token_channels,
            max_channel_chars=settings.max_channel_name_chars + 1,
        )

    async def verify(self, token: str) -> EndUser:
        """The end user `token` stands for; `BadToken` (or `UnknownApplication`) says why not."""
        app_key = token_app_key(token)
        if app_key is None:
            raise BadToken("not an application's token")
        app = await self._directory.get(app_key)
        if app is None or app.archived_at is not None:
            raise UnknownApplication("no such application, or it is archived")
        now = self._clock()
        claims = verify_end_user_token(
            token,
            accepted_secrets(app, datetime.fromtimestamp(now, UTC)),
            now=now,
            limits=self._limits,
        )
        return EndUser(
            app_id=app.id,
            app_key=app.app_key,
            subject=claims.subject,
            channels=claims.channels,
            user_info=claims.user_info,
            secret_version=claims.secret_version,
            max_connections=app.max_connections,
        )

    async def still_accepts(self, end_user: EndUser) -> bool:
        """Whether `end_user`'s application is live and still accepts the secret that signed
        their token (a rotation's grace period may have ended since the socket opened)."""
        app = await self._directory.get(end_user.app_key)
        if app is None or app.archived_at is not None:
            return False
        now = datetime.fromtimestamp(self._clock(), UTC)
        return any(s.version == end_user.secret_version for s in accepted_secrets(app, now))


def join_refusal(end_user: EndUser, topic: str, max_channel_chars: int) -> str | None:
    """Why `end_user` may not join `topic` (None: they may)."""
    parsed = topics.parse(topic)
    if parsed is None or parsed.app_key != end_user.app_key:
        return "not a topic of this application"
    if parsed.kind == "broadcast":
        return None
    if parsed.kind == "user":
        return None if parsed.name == end_user.subject else "another end user's topic"
    if topics.channel_problem(parsed.name, max_channel_chars) is not None:
        return "not a channel name"
    if not topics.channel_allowed(parsed.name, end_user.channels):
        return "the token does not allow this channel"
    return None
