"""While the database cannot answer, every REST request gets 503 with Retry-After in the error
shape, never a 500 (drill D2 measures it through real outages; this is the rule)."""

from __future__ import annotations

import httpx

from parley.service import RunningServer
from tests.api.conftest import register


async def test_requests_get_503_with_retry_after_while_the_database_is_gone(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    alice = await register(client)
    await server.context.database.close()
    for method, path, body in (
        ("GET", "/api/me", None),
        ("GET", "/api/conversations", None),
        ("GET", "/api/users", None),
        ("POST", "/api/auth/login", {"email": alice.email, "password": alice.password}),
        ("POST", "/api/conversations", {"member_ids": [alice.id]}),
    ):
        response = await client.request(method, path, json=body, headers=alice.headers)
        assert response.status_code == 503, (path, response.text)
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "unavailable"


async def test_they_succeed_again_once_the_database_is_back(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    alice = await register(client)
    database = server.context.database
    await database.close()
    assert (await client.get("/api/me", headers=alice.headers)).status_code == 503
    await database.connect()
    assert (await client.get("/api/me", headers=alice.headers)).status_code == 200
