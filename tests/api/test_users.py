"""The user directory and accounts created by moderators."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from tests.api.account_helpers import last_token, login, mails_to, make_admin
from tests.api.conftest import register

if TYPE_CHECKING:
    import httpx

    from parley.service import RunningServer


async def test_list_users_pages_newest_first_with_public_fields_only(
    client: httpx.AsyncClient,
) -> None:
    accounts = [await register(client) for _ in range(5)]
    viewer = accounts[0]
    seen: list[dict[str, object]] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        response = await client.get("/api/users", params=params, headers=viewer.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["data"]
        if page["next_cursor"] is None:
            break
        params = {"limit": 2, "before": page["next_cursor"]}
    assert [u["id"] for u in seen] == [a.id for a in reversed(accounts)]
    assert all("email" not in u and "settings" not in u for u in seen)


async def test_list_users_excludes_banned_and_validates_parameters(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    viewer, banned = await register(client), await register(client)
    await server.context.stores.users.set_role_and_ban(uuid.UUID(banned.id), role=None, banned=True)
    ids = [u["id"] for u in (await client.get("/api/users", headers=viewer.headers)).json()["data"]]
    assert banned.id not in ids
    assert viewer.id in ids
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"before": "!!"}):
        response = await client.get("/api/users", params=params, headers=viewer.headers)
        assert response.status_code == 422, params
    assert (await client.get("/api/users")).status_code == 401


async def test_get_user_by_id(client: httpx.AsyncClient, server: RunningServer) -> None:
    viewer, other = await register(client), await register(client, job="welder")
    response = await client.get(f"/api/users/{other.id}", headers=viewer.headers)
    assert response.status_code == 200
    assert response.json()["username"] == other.username
    assert response.json()["job"] == "welder"
    missing = await client.get(f"/api/users/{uuid.uuid4()}", headers=viewer.headers)
    assert missing.status_code == 404
    assert (await client.get("/api/users/not-a-uuid", headers=viewer.headers)).status_code == 404
    await server.context.stores.users.set_role_and_ban(uuid.UUID(other.id), role=None, banned=True)
    assert (await client.get(f"/api/users/{other.id}", headers=viewer.headers)).status_code == 404
    await make_admin(server, viewer, "moderator")
    assert (await client.get(f"/api/users/{other.id}", headers=viewer.headers)).status_code == 200


async def test_moderators_create_users_whose_generated_password_is_mailed(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    moderator = await register(client)
    await make_admin(server, moderator, "moderator")
    body = {"email": "Hire@Example.com", "username": "hire", "name": "New", "job": "intern"}
    response = await client.post("/api/users", json=body, headers=moderator.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["email"] == "hire@example.com"
    assert created["role"] == "registered"
    assert "password" not in response.text
    (mail,) = await mails_to(client, "hire@example.com")
    match = re.search(r"password: (\S+)", mail["text_body"])
    assert match
    password = match.group(1)
    assert len(password) >= 16
    assert f"password: {password}" in mail["html_body"]
    signed_in = await login(client, "hire@example.com", password)
    assert signed_in.status_code == 200
    assert signed_in.json()["user"]["id"] == created["id"]
    token = await last_token(client, "hire@example.com")
    assert (await client.post("/api/auth/confirm", json={"token": token})).status_code == 200


async def test_create_user_refusals(client: httpx.AsyncClient, server: RunningServer) -> None:
    plain = await register(client)
    body = {"email": "x@example.com", "username": "xx_x"}
    assert (await client.post("/api/users", json=body, headers=plain.headers)).status_code == 403
    assert (await client.post("/api/users", json=body)).status_code == 401
    admin = await register(client)
    await make_admin(server, admin)
    for bad, status in (
        ({"email": plain.email, "username": "fresh"}, 409),
        ({"email": "fresh@example.com", "username": plain.username.upper()}, 409),
        ({"email": "nope", "username": "fresh"}, 422),
        ({"email": "fresh@example.com", "username": "-x"}, 422),
        ({"email": "fresh@example.com", "username": "fresh", "job": "j" * 101}, 422),
        ({"username": "fresh"}, 422),
    ):
        response = await client.post("/api/users", json=bad, headers=admin.headers)
        assert response.status_code == status, (bad, response.text)
