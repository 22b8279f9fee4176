"""API tokens (ExPusherLite): create once, list, delete, exchange for a session JWT."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING

from tests.api.account_helpers import bearer
from tests.api.conftest import register

if TYPE_CHECKING:
    import httpx

    from parley.service import RunningServer


async def test_api_token_lifecycle(client: httpx.AsyncClient, server: RunningServer) -> None:
    account = await register(client)
    created = await client.post("/api/tokens", json={"name": "deploy bot"}, headers=account.headers)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert token.startswith("plt_")
    assert len(token) > 40
    stored = await server.context.database.fetchval("SELECT token_hash FROM api_tokens")
    assert stored == hashlib.sha256(token.encode()).digest()  # hashed at rest, never plaintext
    listed = await client.get("/api/tokens", headers=account.headers)
    assert listed.status_code == 200
    (item,) = listed.json()["data"]
    assert item["name"] == "deploy bot"
    assert "token" not in item
    assert item["last_used_at"] is None

    session = await client.post("/api/session", json={"token": token})
    assert session.status_code == 200, session.text
    jwt_headers = bearer(session.json()["access_token"])
    me = await client.get("/api/me", headers=jwt_headers)
    assert me.status_code == 200
    assert me.json()["id"] == account.id
    assert (await client.get("/api/tokens", headers=account.headers)).json()["data"][0][
        "last_used_at"
    ]

    deleted = await client.delete(f"/api/tokens/{item['id']}", headers=account.headers)
    assert deleted.status_code == 204
    assert (await client.get("/api/me", headers=jwt_headers)).status_code == 401
    assert (await client.post("/api/session", json={"token": token})).status_code == 401
    assert (await client.get("/api/tokens", headers=account.headers)).json()["data"] == []
    again = await client.delete(f"/api/tokens/{item['id']}", headers=account.headers)
    assert again.status_code == 404


async def test_api_token_refusals(client: httpx.AsyncClient) -> None:
    account, other = await register(client), await register(client)
    for body in ({}, {"name": ""}, {"name": "   "}, {"name": "n" * 101}, {"name": 3}):
        response = await client.post("/api/tokens", json=body, headers=account.headers)
        assert response.status_code == 422, body
    assert (await client.post("/api/tokens", json={"name": "x"})).status_code == 401
    created = (await client.post("/api/tokens", json={"name": "x"}, headers=account.headers)).json()
    # Someone else's token id is 404, like one that never existed.
    assert (
        await client.delete(f"/api/tokens/{created['id']}", headers=other.headers)
    ).status_code == 404
    assert (
        await client.delete(f"/api/tokens/{uuid.uuid4()}", headers=account.headers)
    ).status_code == 404
    for body in ({"token": "plt_unknown"}, {"token": "not even prefixed"}):
        assert (await client.post("/api/session", json=body)).status_code == 401
    assert (await client.post("/api/session", json={})).status_code == 422
    # An API session cannot mint or delete API tokens.
    session = await client.post("/api/session", json={"token": created["token"]})
    headers = bearer(session.json()["access_token"])
    assert (
        await client.post("/api/tokens", json={"name": "y"}, headers=headers)
    ).status_code == 403
    assert (await client.delete(f"/api/tokens/{created['id']}", headers=headers)).status_code == 403


async def test_api_sessions_die_with_logout_all_and_bans(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    account = await register(client)
    created = (await client.post("/api/tokens", json={"name": "x"}, headers=account.headers)).json()
    session = (await client.post("/api/session", json={"token": created["token"]})).json()
    assert (await client.post("/api/auth/logout_all", headers=account.headers)).status_code == 204
    assert (await client.get("/api/me", headers=bearer(session["access_token"]))).status_code == 401
    # The API token itself survives logout_all (it is not a session); a ban stops it.
    renewed = await client.post("/api/session", json={"token": created["token"]})
    assert renewed.status_code == 200
    await server.context.stores.users.set_role_and_ban(
        uuid.UUID(account.id), role=None, banned=True
    )
    assert (await client.post("/api/session", json={"token": created["token"]})).status_code == 401


async def test_at_most_100_api_tokens_per_user(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for n in range(100):
        response = await client.post("/api/tokens", json={"name": f"t{n}"}, headers=account.headers)
        assert response.status_code == 201
    refused = await client.post("/api/tokens", json={"name": "one more"}, headers=account.headers)
    assert refused.status_code == 409
    assert len((await client.get("/api/tokens", headers=account.headers)).json()["data"]) == 100
