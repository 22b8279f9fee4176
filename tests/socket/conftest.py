"""A real Parley for socket tests: the whole service on a free port, users made through the store.

Users are created with the store and signed in with the token service directly (no password
hashing, no HTTP), which keeps tests that need dozens of users fast; everything a socket touches
(upgrade, token checks, sessions, channels, chat, PostgreSQL) is the real thing.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from parley.api.socket.core.hub import SocketHub
from parley.config import Settings
from parley.service import RunningServer, serve
from tests.conftest import make_settings

_names = itertools.count(1)

SOCKET_TEST_SETTINGS: dict[str, dict[str, Any]] = {
    "socket": {"heartbeat_timeout_seconds": 60.0},
}


@dataclass
class User:
    id: uuid.UUID
    username: str
    role: str
    token: str

    @property
    def key(self) -> str:
        return str(self.id)


class Realtime:
    """The running server plus helpers to make users and conversations."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.context = server.context
        self.runtime = server.runtime
        host_port = server.base_url.split("://", 1)[1]
        self.url = f"ws://{host_port}/socket"
        self.http = server.base_url

    @property
    def hub(self) -> SocketHub:
        return self.context.sockets

    async def user(self, role: str = "registered") -> User:
        name = f"sock{next(_names)}_{uuid.uuid4().hex[:6]}"
        stored = await self.context.stores.users.create(
            email=f"{name}@example.com",
            username=name,
            password_hash="x" * 20,
            role=role,
            confirmed=True,
        )
        token, _ = self.context.tokens.issue_access(stored.id, role, stored.token_version)
        return User(stored.id, name, role, token)

    async def users(self, count: int, role: str = "registered") -> list[User]:
        return [await self.user(role) for _ in range(count)]

    async def group(self, creator: User, *others: User) -> uuid.UUID:
        conversation = await self.context.stores.conversations.create_group(
            creator.id, "test", [other.id for other in others]
        )
        return conversation.id

    def channel_token(self, user: User, conversation_id: uuid.UUID) -> str:
        token, _ = self.context.tokens.issue_channel(user.id, conversation_id, 0)
        return token


def socket_settings(tmp_path: Path, database_url: str, **overrides: dict[str, Any]) -> Settings:
    sections: dict[str, dict[str, Any]] = {k: dict(v) for k, v in SOCKET_TEST_SETTINGS.items()}
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    return make_settings(tmp_path, database_url, **sections)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return socket_settings(tmp_path, database_url)


@pytest.fixture
async def realtime(settings: Settings, nursery: trio.Nursery) -> Realtime:
    running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    return Realtime(running)
