"""ExPusherLite's own curl works: `POST /api/session` takes the form `token=...` as well as JSON,
and answers the JWT as `jwt` (the seed's name) and `access_token`."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import orjson
import pytest
import trio

from parley.api.openapi import openapi_document
from tests.api.account_helpers import bearer
from tests.api.conftest import register

if TYPE_CHECKING:
    import httpx

    from parley.service import RunningServer


async def api_token(client: httpx.AsyncClient) -> tuple[str, str]:
    account = await register(client)
    created = await client.post("/api/tokens", json={"name": "curl"}, headers=account.headers)
    assert created.status_code == 201, created.text
    return account.id, created.json()["token"]


async def test_the_seeds_curl_exchanges_a_form_encoded_token_for_a_jwt(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed; the next test sends the same form with httpx")
    user_id, token = await api_token(client)
    # Exactly the seed's command line: `curl -X POST --data "token=..." http://.../api/session`.
    done = await trio.run_process(
        [curl, "-sS", "-X", "POST", "--data", f"token={token}", f"{server.base_url}/api/session"],
        capture_stdout=True,
    )
    answer = orjson.loads(done.stdout)
    assert answer["jwt"] == answer["access_token"]
    me = await client.get("/api/me", headers=bearer(answer["jwt"]))
    assert me.status_code == 200
    assert me.json()["id"] == user_id


async def test_a_form_body_and_a_json_body_give_the_same_kind_of_session(
    client: httpx.AsyncClient,
) -> None:
    _, token = await api_token(client)
    for response in (
        await client.post("/api/session", data={"token": token}),
        await client.post("/api/session", json={"token": token}),
    ):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["jwt"] == body["access_token"]
        assert body["token_type"] == "Bearer"
        assert (await client.get("/api/me", headers=bearer(body["jwt"]))).status_code == 200


async def test_bad_form_bodies_get_the_documented_errors(client: httpx.AsyncClient) -> None:
    _, token = await api_token(client)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert (await client.post("/api/session", data={"token": "plt_unknown"})).status_code == 401
    assert (await client.post("/api/session", content=b"", headers=form)).status_code == 422
    twice = f"token={token}&token={token}".encode()
    assert (await client.post("/api/session", content=twice, headers=form)).status_code == 422
    other = await client.post(
        "/api/session", content=token.encode(), headers={"Content-Type": "text/plain"}
    )
    assert other.status_code == 415
    assert "x-www-form-urlencoded" in other.json()["error"]["message"]


def test_the_openapi_document_declares_the_form_body_and_the_jwt_key() -> None:
    operation = openapi_document()["paths"]["/api/session"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-www-form-urlencoded"}
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert "jwt" in answer["required"]
