"""The signed-in user's account: profile, settings, password and e-mail changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.api.account_helpers import bearer, last_token, login, mails_to, server_with
from tests.api.conftest import register

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from parley.service import RunningServer


async def test_get_me_shows_private_fields_to_the_owner(client: httpx.AsyncClient) -> None:
    account = await register(client, job="pilot")
    response = await client.get("/api/me", headers=account.headers)
    assert response.status_code == 200
    me = response.json()
    assert me["email"] == account.email
    assert me["job"] == "pilot"
    assert me["settings"] == {"theme": "system"}
    assert me["email_confirmed"] is False
    assert (await client.get("/api/me")).status_code == 401


async def test_patch_me_changes_the_profile_and_settings(client: httpx.AsyncClient) -> None:
    account = await register(client)
    other = await register(client)
    body = {"display_name": "Ann ✈", "bio": "line one\nline two", "theme": "dark", "job": "pilot"}
    response = await client.patch("/api/me", json=body, headers=account.headers)
    assert response.status_code == 200, response.text
    me = response.json()
    assert (me["display_name"], me["bio"], me["job"]) == ("Ann ✈", "line one\nline two", "pilot")
    assert me["settings"] == {"theme": "dark"}
    # Public fields are visible to others; private settings and e-mail are not.
    seen = (await client.get(f"/api/users/{account.id}", headers=other.headers)).json()
    assert seen["display_name"] == "Ann ✈"
    assert seen["bio"] == "line one\nline two"
    assert "settings" not in seen
    assert "email" not in seen
    # null (or "") clears a text field; absent fields stay.
    response = await client.patch("/api/me", json={"bio": None, "job": ""}, headers=account.headers)
    me = response.json()
    assert me["bio"] is None
    assert me["job"] is None
    assert me["display_name"] == "Ann ✈"
    assert me["settings"] == {"theme": "dark"}
    assert (await client.patch("/api/me", json={}, headers=account.headers)).status_code == 200


async def test_patch_me_refuses_invalid_values(client: httpx.AsyncClient) -> None:
    account = await register(client)
    for body, field in (
        ({"theme": "neon"}, "theme"),
        ({"theme": None}, "theme"),
        ({"display_name": "d" * 101}, "display_name"),
        ({"bio": "b" * 1001}, "bio"),
        ({"display_name": "tab\there"}, "display_name"),
        ({"bio": 3}, "bio"),
    ):
        response = await client.patch("/api/me", json=body, headers=account.headers)
        assert response.status_code == 422, body
        assert field in response.json()["error"]["fields"]
    response = await client.patch(
        "/api/me", content=b"[]", headers={**account.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400


async def test_change_password_answers_a_fresh_session_and_kills_the_others(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    body = {"current_password": account.password, "password": "a brand new password"}
    response = await client.patch("/api/me/password", json=body, headers=account.headers)
    assert response.status_code == 200, response.text
    fresh = response.json()
    assert (await client.get("/api/me", headers=account.headers)).status_code == 401
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refreshed.status_code == 401
    assert (await client.get("/api/me", headers=bearer(fresh["access_token"]))).status_code == 200
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": fresh["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert (await login(client, account.email, "a brand new password")).status_code == 200
    assert (await login(client, account.email, account.password)).status_code == 401


async def test_change_password_checks_the_current_one_and_the_new_one(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    wrong = {"current_password": "not it at all", "password": "a brand new password"}
    response = await client.patch("/api/me/password", json=wrong, headers=account.headers)
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"current_password": ["is not correct"]}
    short = {"current_password": account.password, "password": "short"}
    response = await client.patch("/api/me/password", json=short, headers=account.headers)
    assert response.status_code == 422
    assert "password" in response.json()["error"]["fields"]
    missing = await client.patch("/api/me/password", json={}, headers=account.headers)
    assert set(missing.json()["error"]["fields"]) == {"current_password", "password"}
    # Nothing changed.
    assert (await client.get("/api/me", headers=account.headers)).status_code == 200


async def test_guessing_the_current_password_is_throttled(
    tmp_path: Path, database_url: str
) -> None:
    async with server_with(tmp_path, database_url, auth={"login_failures_per_account": 2}) as (
        _,
        client,
    ):
        account = await register(client)
        body = {"current_password": "guess guess", "password": "a brand new password"}
        statuses = [
            (await client.patch("/api/me/password", json=body, headers=account.headers)).status_code
            for _ in range(3)
        ]
        assert statuses == [422, 422, 429]
        body = {"email": "new@example.com", "password": "guess guess"}
        response = await client.patch("/api/me/email", json=body, headers=account.headers)
        assert response.status_code == 429
        assert "retry-after" in response.headers


async def test_change_email_needs_confirmation_from_the_new_address(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    body = {"email": "New.Address@Example.com", "password": account.password}
    response = await client.patch("/api/me/email", json=body, headers=account.headers)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "status": "confirmation_sent",
        "pending_email": "new.address@example.com",
    }
    # Not applied yet.
    assert (await client.get("/api/me", headers=account.headers)).json()["email"] == account.email
    mails = await mails_to(client, "new.address@example.com")
    assert len(mails) == 1
    assert "new" in mails[0]["subject"]
    token = await last_token(client, "new.address@example.com")
    confirmed = await client.post("/api/auth/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "email_changed"
    me = (await client.get("/api/me", headers=account.headers)).json()
    assert me["email"] == "new.address@example.com"
    assert me["email_confirmed"] is True
    assert (await login(client, "new.address@example.com", account.password)).status_code == 200
    assert (await login(client, account.email, account.password)).status_code == 401
    assert (await client.post("/api/auth/confirm", json={"token": token})).status_code == 422


async def test_change_email_refusals(client: httpx.AsyncClient) -> None:
    account = await register(client)
    taken = await register(client)
    cases = [
        ({"email": taken.email.upper(), "password": account.password}, 409),
        ({"email": "not-an-address", "password": account.password}, 422),
        ({"email": account.email, "password": account.password}, 422),
        ({"email": "fresh@example.com", "password": "wrong password"}, 422),
        ({"email": "fresh@example.com"}, 422),
    ]
    for body, status in cases:
        response = await client.patch("/api/me/email", json=body, headers=account.headers)
        assert response.status_code == status, (body, response.text)
    assert await mails_to(client, "fresh@example.com") == []


async def test_change_email_to_an_address_registered_meanwhile_is_409_at_confirm(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    body = {"email": "contested@example.com", "password": account.password}
    assert (
        await client.patch("/api/me/email", json=body, headers=account.headers)
    ).status_code == 202
    token = await last_token(client, "contested@example.com")
    await register(client, "contested")
    response = await client.post("/api/auth/confirm", json={"token": token})
    assert response.status_code == 409
    assert (await client.get("/api/me", headers=account.headers)).json()["email"] == account.email


async def test_api_token_sessions_cannot_change_credentials(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    account = await register(client)
    created = await client.post("/api/tokens", json={"name": "ci"}, headers=account.headers)
    session = await client.post("/api/session", json={"token": created.json()["token"]})
    headers = bearer(session.json()["access_token"])
    assert (await client.get("/api/me", headers=headers)).status_code == 200
    body = {"current_password": account.password, "password": "a brand new password"}
    assert (await client.patch("/api/me/password", json=body, headers=headers)).status_code == 403
    body = {"email": "x@example.com", "password": account.password}
    assert (await client.patch("/api/me/email", json=body, headers=headers)).status_code == 403
