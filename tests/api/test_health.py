"""The running server: health, debug views, error shape for unknown routes."""

from __future__ import annotations

import httpx

from parley.service import RunningServer


async def test_health_reports_database_and_actor_count(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["actors"] >= 1


async def test_health_is_503_with_the_reason_when_the_database_is_gone(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    await server.context.database.close()
    response = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"].startswith("error")


async def test_unknown_routes_use_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
