"""The running server: health, debug views, error shape for unknown routes."""

from __future__ import annotations

import httpx
import trio

from parley.config import Settings
from parley.service import RunningServer
from tests.conftest import TEST_OPERATOR_TOKEN

OPERATOR = {"Authorization": f"Bearer {TEST_OPERATOR_TOKEN}"}


async def test_health_reports_database_and_actor_count(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["accepting"] is True
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


async def test_debug_views_need_the_operator_token(client: httpx.AsyncClient) -> None:
    for path in ("/debug/actors", "/debug/tree", "/metrics"):
        assert (await client.get(path)).status_code == 401
        wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


async def test_tree_shows_the_supervision_tree_in_order(client: httpx.AsyncClient) -> None:
    response = await client.get("/debug/tree", headers=OPERATOR)
    tree = response.json()["tree"]
    assert tree["strategy"] == "rest_for_one"
    names = [child["name"] for child in tree["children"]]
    assert names[:3] == ["store", "writer", "registry"]
    assert names[-1] == "http"
    assert all(child["status"] == "running" for child in tree["children"])


async def test_the_listener_queues_as_many_handshakes_as_configured(
    server: RunningServer, settings: Settings
) -> None:
    # A listening socket's Send-Q in `ss` is its accept backlog (inet_diag's idiag_wqueue).
    port = httpx.URL(server.base_url).port
    listing = await trio.run_process(
        ["ss", "-ltnH", f"sport = :{port}"], capture_stdout=True, check=True
    )
    backlogs = {int(line.split()[2]) for line in listing.stdout.decode().splitlines()}
    assert backlogs == {settings.server.listen_backlog}
    assert settings.server.listen_backlog == 1024  # not Hypercorn's 100, which W4 overflowed
