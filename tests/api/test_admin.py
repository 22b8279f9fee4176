"""Roles and bans: PATCH /api/admin/users/{id}, and the role levels of endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from parley.config import PROJECT_ROOT
from tests.api.account_helpers import login, make_admin
from tests.api.conftest import register
from tests.conftest import TEST_JWT_SECRET

if TYPE_CHECKING:
    import httpx

    from parley.service import RunningServer


async def test_admin_bans_a_user_whose_tokens_stop_at_once(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    admin, target = await register(client), await register(client)
    await make_admin(server, admin)
    response = await client.patch(
        f"/api/admin/users/{target.id}", json={"banned": True}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["banned"] is True
    assert response.json()["banned_at"]
    assert (await client.get("/api/me", headers=target.headers)).status_code == 401
    refresh = await client.post("/api/auth/refresh", json={"refresh_token": target.refresh_token})
    assert refresh.status_code == 401
    assert (await login(client, target.email, target.password)).status_code == 403
    response = await client.patch(
        f"/api/admin/users/{target.id}", json={"banned": False}, headers=admin.headers
    )
    assert response.json()["banned"] is False
    assert (await login(client, target.email, target.password)).status_code == 200


async def test_admin_assigns_roles_and_the_levels_apply(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    admin, target = await register(client), await register(client)
    await make_admin(server, admin)
    body = {"email": "m@example.com", "username": "made_by_mod"}
    assert (await client.post("/api/users", json=body, headers=target.headers)).status_code == 403
    response = await client.patch(
        f"/api/admin/users/{target.id}", json={"role": "moderator"}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["role"] == "moderator"
    # The role change revoked the old token (it carried the old role); sign in again.
    assert (await client.get("/api/me", headers=target.headers)).status_code == 401
    fresh = (await login(client, target.email, target.password)).json()["access_token"]
    headers = {"Authorization": f"Bearer {fresh}"}
    assert (await client.post("/api/users", json=body, headers=headers)).status_code == 201
    # A moderator is not an admin.
    response = await client.patch(
        f"/api/admin/users/{admin.id}", json={"banned": True}, headers=headers
    )
    assert response.status_code == 403


async def test_admins_cannot_ban_or_demote_themselves(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    admin = await register(client)
    await make_admin(server, admin)
    for body in ({"banned": True}, {"role": "moderator"}, {"role": "registered", "banned": False}):
        response = await client.patch(
            f"/api/admin/users/{admin.id}", json=body, headers=admin.headers
        )
        assert response.status_code == 409, body
        assert response.json()["error"]["code"] == "cannot_change_self"
    response = await client.patch(
        f"/api/admin/users/{admin.id}", json={"role": "admin"}, headers=admin.headers
    )
    assert response.status_code == 200


async def test_admin_patch_refusals(client: httpx.AsyncClient, server: RunningServer) -> None:
    admin, target = await register(client), await register(client)
    await make_admin(server, admin)
    url = f"/api/admin/users/{target.id}"
    for body in ({}, {"role": "god"}, {"banned": "yes"}, {"role": None, "banned": None}):
        response = await client.patch(url, json=body, headers=admin.headers)
        assert response.status_code == 422, body
    missing = await client.patch(
        f"/api/admin/users/{uuid.uuid4()}", json={"banned": True}, headers=admin.headers
    )
    assert missing.status_code == 404
    assert (
        await client.patch(url, json={"banned": True}, headers=target.headers)
    ).status_code == 403
    assert (await client.patch(url, json={"banned": True})).status_code == 401
    response = await client.patch(
        url, content=b"nope", headers={**admin.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_the_first_admin_comes_from_the_command_line(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PARLEY_ENV": "test",
        "PARLEY_CONFIG": str(tmp_path / "absent.toml"),
        "PARLEY_DATA_DIR": str(tmp_path),
        "PARLEY_AUTH_JWT_SECRET": TEST_JWT_SECRET,
    }

    def create(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "parley", "--log-level", "WARNING", "users", "create", *args],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    admin = ["--email", "root@example.com", "--username", "root"]
    created = create(*admin, "--password", "a long admin password", "--admin")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created admin root <root@example.com> id=")
    again = create(*admin, "--password", "a long admin password", "--admin")
    assert again.returncode == 1
    assert "email already taken" in again.stderr
    short = create("--email", "x@example.com", "--username", "xyz", "--password", "short")
    assert short.returncode == 1
    assert "at least 10 characters" in short.stderr
