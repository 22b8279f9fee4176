"""A real Parley for the console's tests, and an operator signed in to it.

`operator` signs in through `POST /debug/sign-in` with the operator token and keeps the session
cookie and CSRF token, as the console's page does; `bearer` is the header scripts send instead.
Users, conversations and sockets are made with the socket tests' `Realtime` helper (the store and
token service directly, so no password hashing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from parley.config import Settings
from parley.service import RunningServer, serve
from tests.conftest import TEST_OPERATOR_TOKEN, make_settings
from tests.socket.conftest import Realtime

BEARER = {"Authorization": f"Bearer {TEST_OPERATOR_TOKEN}"}

CONSOLE_SETTINGS: dict[str, dict[str, Any]] = {
    "debug": {"sample_seconds": 0.2, "loop_lag_probe_seconds": 0.01, "drain_seconds": 0.0},
    "socket": {"heartbeat_timeout_seconds": 60.0},
}


def console_settings(tmp_path: Path, database_url: str, **overrides: dict[str, Any]) -> Settings:
    sections: dict[str, dict[str, Any]] = {k: dict(v) for k, v in CONSOLE_SETTINGS.items()}
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    return make_settings(tmp_path, database_url, **sections)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return console_settings(tmp_path, database_url)


@pytest.fixture
async def server(settings: Settings, nursery: trio.Nursery) -> RunningServer:
    running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    return running


@pytest.fixture
def realtime(server: RunningServer) -> Realtime:
    return Realtime(server)


@dataclass
class Operator:
    """An HTTP client signed in to the console: its cookie jar holds the session."""

    http: httpx.AsyncClient
    csrf_token: str

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers={"X-CSRF-Token": self.csrf_token})


async def sign_in(http: httpx.AsyncClient, token: str = TEST_OPERATOR_TOKEN) -> Operator:
    response = await http.post("/debug/sign-in", json={"token": token})
    assert response.status_code == 200, response.text
    return Operator(http, response.json()["csrf_token"])


@pytest.fixture
async def anonymous(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        yield http


@pytest.fixture
async def operator(server: RunningServer) -> AsyncIterator[Operator]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        yield await sign_in(http)


async def wait_for(
    condition: Callable[[], Awaitable[bool]], what: str, *, seconds: float = 30.0
) -> None:
    """Poll `condition` (the running server's views are what is under test) until it holds."""
    with trio.fail_after(seconds):
        while not await condition():  # noqa: ASYNC110 (a condition on a live server's view)
            await trio.sleep(0.01)
    assert await condition(), what
