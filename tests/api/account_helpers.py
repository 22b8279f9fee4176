"""Helpers shared by the account tests: the development mailbox, tokens from mails, servers with
custom settings, and signing in."""

from __future__ import annotations

import re
import uuid
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import trio

from parley.service import RunningServer, serve
from tests.api.conftest import _CHECKER, Account
from tests.conftest import make_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from parley.config import Settings

TOKEN_RE = re.compile(r"^Token: (\S+)$", re.MULTILINE)


async def mails_to(client: httpx.AsyncClient, address: str) -> list[dict[str, Any]]:
    """Mails queued for `address`, newest first (from /dev/mailbox.json)."""
    response = await client.get("/dev/mailbox.json", params={"limit": 500})
    assert response.status_code == 200, response.text
    return [m for m in response.json()["data"] if m["to"] == address.lower()]


async def last_token(client: httpx.AsyncClient, address: str, subject_part: str = "") -> str:
    """The token in the newest mail to `address` whose subject contains `subject_part`."""
    for mail in await mails_to(client, address):
        if subject_part in mail["subject"]:
            match = TOKEN_RE.search(mail["text_body"])
            assert match, mail["text_body"]
            return match.group(1)
    raise AssertionError(f"no mail to {address} about {subject_part!r}")


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def server_with(
    tmp_path: Path, database_url: str, **overrides: dict[str, Any]
) -> AsyncIterator[tuple[RunningServer, httpx.AsyncClient]]:
    """A server (and an OpenAPI-checking client) with settings overridden per section."""
    settings: Settings = make_settings(tmp_path, database_url, **overrides)
    async with trio.open_nursery() as nursery:
        running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
        async with httpx.AsyncClient(
            base_url=running.base_url, event_hooks={"response": [_CHECKER.check]}, timeout=30
        ) as client:
            yield running, client
        nursery.cancel_scope.cancel()


async def make_admin(server: RunningServer, account: Account, role: str = "admin") -> None:
    """Promote `account` directly in the store (the first admin comes from the CLI, not the API),
    then sign it in again: the role change revoked its tokens."""
    user = await server.context.stores.users.set_role_and_ban(
        uuid.UUID(account.id), role=role, banned=None
    )
    assert user is not None
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await login(client, account.email, account.password)
        assert response.status_code == 200, response.text
        account.access_token = response.json()["access_token"]
        account.refresh_token = response.json()["refresh_token"]
