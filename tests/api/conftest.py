"""A real Parley server for API tests: the whole service in the test's nursery, on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from parley.config import Settings
from parley.service import RunningServer, serve
from tests.openapi_check import OpenApiChecker

_CHECKER = OpenApiChecker()


@dataclass
class Account:
    id: str
    email: str
    username: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@pytest.fixture
async def server(settings: Settings, nursery: trio.Nursery) -> RunningServer:
    running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    return running


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.base_url, event_hooks={"response": [_CHECKER.check]}, timeout=30
    ) as client:
        yield client


_counter = iter(range(1_000_000))


async def register(client: httpx.AsyncClient, name: str | None = None, **extra: Any) -> Account:
    """Register a fresh user through the API and return its credentials."""
    name = name or f"user{next(_counter)}"
    password = f"correct horse {name}"
    body = {"email": f"{name}@example.com", "password": password, "username": name, **extra}
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    return Account(
        id=data["user"]["id"],
        email=body["email"],
        username=name,
        password=password,
        access_token=data["access_token"],
        refresh_token=data["refresh_token"],
    )
