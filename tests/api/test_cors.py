"""Browsers on other origins (CORS): listed origins are answered, with credentials; others get no
`Access-Control-*` header at all, so their browsers keep every answer from the page."""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import trio

from parley.service import RunningServer, serve
from tests.conftest import make_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

APP = "http://localhost:3000"  # SimpleChatApp's React dev server
OTHER = "https://evil.example"


@asynccontextmanager
async def cors_server(
    tmp_path: Path, database_url: str, **http: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A server with these `[http]` settings, and a plain client: OPTIONS is no documented
    operation, so the OpenAPI-checking client of the other tests does not fit."""
    settings = make_settings(tmp_path, database_url, http=http)
    async with trio.open_nursery() as nursery:
        running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as client:
            yield client
        nursery.cancel_scope.cancel()


def preflight(origin: str, method: str, headers: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def listed(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


async def test_a_preflight_from_a_listed_origin_is_answered_with_that_origin(
    tmp_path: Path, database_url: str
) -> None:
    async with cors_server(tmp_path, database_url, cors_origins=[APP]) as client:
        response = await client.options(
            "/api/auth/refresh", headers=preflight(APP, "POST", "Content-Type, X-Custom")
        )
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == APP
        assert response.headers["access-control-allow-credentials"] == "true"
        assert "post" in listed(response.headers["access-control-allow-methods"])
        # The requested headers that are allowed, and no other.
        assert listed(response.headers["access-control-allow-headers"]) == {"content-type"}
        assert response.headers["access-control-max-age"] == "600"
        assert "origin" in listed(response.headers["vary"])

        # A preflight never meets the role check: the browser sends no Authorization with it.
        me = await client.options(
            "/api/me", headers=preflight(APP, "PATCH", "authorization,content-type")
        )
        assert me.status_code == 204
        assert listed(me.headers["access-control-allow-headers"]) == {
            "authorization",
            "content-type",
        }


async def test_a_preflight_from_another_origin_gets_no_access_control_header(
    tmp_path: Path, database_url: str
) -> None:
    async with cors_server(tmp_path, database_url, cors_origins=[APP]) as client:
        for origin in (OTHER, APP + "/", "http://localhost:3001", "null"):
            response = await client.options(
                "/api/auth/login", headers=preflight(origin, "POST", "content-type")
            )
            assert cors_headers(response) == {}, origin
        actual = await client.post(
            "/api/auth/login",
            json={"email": "a@example.com", "password": "wrong password"},
            headers={"Origin": OTHER},
        )
        assert actual.status_code == 401
        assert cors_headers(actual) == {}


async def test_by_default_no_origin_is_allowed(tmp_path: Path, database_url: str) -> None:
    async with cors_server(tmp_path, database_url) as client:
        response = await client.options(
            "/api/auth/login", headers=preflight(APP, "POST", "content-type")
        )
        assert cors_headers(response) == {}


async def test_actual_responses_to_a_listed_origin_carry_credentials_and_exposed_headers(
    tmp_path: Path, database_url: str
) -> None:
    async with cors_server(tmp_path, database_url, cors_origins=[OTHER, APP]) as client:
        body = {"email": "cors@example.com", "password": "correct horse cors", "username": "cors"}
        registered = await client.post("/api/auth/register", json=body, headers={"Origin": APP})
        assert registered.status_code == 201
        assert registered.headers["access-control-allow-origin"] == APP
        assert registered.headers["access-control-allow-credentials"] == "true"
        assert "set-cookie" in registered.headers  # the refresh cookie the page may now keep
        exposed = listed(registered.headers["access-control-expose-headers"])
        assert {"retry-after", "www-authenticate"} <= exposed
        assert "origin" in listed(registered.headers["vary"])


async def test_any_origin_is_answered_with_a_wildcard_and_never_with_credentials(
    tmp_path: Path, database_url: str
) -> None:
    async with cors_server(tmp_path, database_url, cors_origins=["*"]) as client:
        response = await client.options(
            "/api/session", headers=preflight(OTHER, "POST", "content-type")
        )
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers
        actual = await client.get("/health", headers={"Origin": OTHER})
        assert actual.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in actual.headers
