"""Registration, confirmation, login, sessions and passwords over HTTP against a real server."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Literal

import argon2
import jwt
import pytest
import trio

from tests.api.account_helpers import bearer, last_token, login, mails_to, server_with
from tests.api.conftest import Account, register
from tests.conftest import TEST_JWT_SECRET

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from parley.service import RunningServer

# --- register ------------------------------------------------------------------------------------


async def test_register_answers_a_session_sets_the_cookie_and_queues_a_confirmation(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "email": "Ann@Example.com",
        "password": "correct horse battery",
        "username": "ann",
        "name": "Ann",
        "subname": "Lee",
        "job": "pilot",
    }
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["user"]["email"] == "ann@example.com"
    assert data["user"]["username"] == "ann"
    assert (data["user"]["name"], data["user"]["subname"], data["user"]["job"]) == (
        "Ann",
        "Lee",
        "pilot",
    )
    assert data["user"]["role"] == "registered"
    assert data["user"]["email_confirmed"] is False
    assert data["token_type"] == "Bearer"
    assert 0 < data["expires_in"] <= 900
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"parley_refresh={data['refresh_token']};")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "Path=/api/auth" in cookie
    assert "SameSite=Lax" in cookie
    assert "secure" not in attributes  # plain HTTP here; Secure is set behind TLS
    me = await client.get("/api/me", headers=bearer(data["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == data["user"]["id"]
    mails = await mails_to(client, "ann@example.com")
    assert len(mails) == 1
    assert "Confirm" in mails[0]["subject"]
    assert "/confirm?token=" in mails[0]["text_body"]


async def test_register_stores_an_argon2id_hash(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    account = await register(client)
    user = await server.context.stores.users.get(uuid.UUID(account.id))
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    assert account.password not in user.password_hash


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "a" * 250 + "@x.org"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 257}, "password"),
        ({"username": "-dash"}, "username"),
        ({"username": "ab"}, "username"),
        ({"username": "u" * 33}, "username"),
        ({"name": "n" * 101}, "name"),
        ({"job": "line\nbreak"}, "job"),
        ({"subname": 5}, "subname"),
        ({"email": None}, "email"),
    ],
)
async def test_register_refuses_invalid_fields_with_422(
    client: httpx.AsyncClient, change: dict[str, object], field: str
) -> None:
    body = {"email": "bob@example.com", "password": "long enough pw", "username": "bob", **change}
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


async def test_register_accepts_the_boundary_sizes(client: httpx.AsyncClient) -> None:
    body = {
        "email": "edge@example.com",
        "password": "p" * 256,
        "username": "u" * 32,
        "name": "n" * 100,
    }
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    assert (await login(client, "edge@example.com", "p" * 256)).status_code == 200
    body = {"email": "edge2@example.com", "password": "p" * 10, "username": "u" * 3}
    assert (await client.post("/api/auth/register", json=body)).status_code == 201


async def test_register_with_a_taken_email_or_username_is_409_case_insensitively(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "carol")
    body = {"email": "CAROL@example.COM", "password": "long enough pw", "username": "other"}
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {"email": ["has already been taken"]}
    body = {"email": "new@example.com", "password": "long enough pw", "username": "CaRoL"}
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 409
    assert "username" in response.json()["error"]["fields"]
    # Nothing was created or mailed for the refused attempts.
    assert await mails_to(client, "new@example.com") == []


async def test_register_with_a_body_that_is_not_a_json_object_is_400(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/auth/register", content=b"[1]", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    response = await client.post(
        "/api/auth/register", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


async def test_concurrent_registrations_of_one_email_create_one_user(
    client: httpx.AsyncClient,
) -> None:
    statuses: list[int] = []

    async def attempt(n: int) -> None:
        body = {"email": "race@example.com", "password": "long enough pw", "username": f"race{n}"}
        statuses.append((await client.post("/api/auth/register", json=body)).status_code)

    async with trio.open_nursery() as nursery:
        for n in range(10):
            nursery.start_soon(attempt, n)
    assert sorted(statuses) == [201] + [409] * 9
    assert len(await mails_to(client, "race@example.com")) == 1


# --- confirm -------------------------------------------------------------------------------------


async def test_confirm_marks_the_address_confirmed_once(client: httpx.AsyncClient) -> None:
    account = await register(client)
    token = await last_token(client, account.email, "Confirm")
    response = await client.post("/api/auth/confirm", json={"token": token})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "confirmed"
    assert response.json()["user"]["email_confirmed"] is True
    me = await client.get("/api/me", headers=account.headers)
    assert me.json()["email_confirmed"] is True
    assert me.json()["confirmed_at"]
    again = await client.post("/api/auth/confirm", json={"token": token})
    assert again.status_code == 422
    assert again.json()["error"]["fields"] == {"token": ["is invalid or has expired"]}


async def test_confirm_refuses_unknown_expired_and_malformed_tokens(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    assert (await client.post("/api/auth/confirm", json={"token": "nope"})).status_code == 422
    assert (await client.post("/api/auth/confirm", json={"token": 42})).status_code == 422
    assert (await client.post("/api/auth/confirm", json={})).status_code == 422
    account = await register(client)
    token = await last_token(client, account.email, "Confirm")
    await server.context.database.execute(
        "UPDATE one_time_tokens SET expires_at = now() - interval '1 second'"
    )
    assert (await client.post("/api/auth/confirm", json={"token": token})).status_code == 422


# --- login ---------------------------------------------------------------------------------------


async def test_login_answers_a_new_session(client: httpx.AsyncClient) -> None:
    account = await register(client)
    response = await login(client, account.email.upper(), account.password)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["user"]["id"] == account.id
    assert data["refresh_token"] != account.refresh_token
    assert "parley_refresh=" in response.headers["set-cookie"]
    me = await client.get("/api/me", headers=bearer(data["access_token"]))
    assert me.status_code == 200


async def test_wrong_password_and_unknown_user_get_the_same_401(client: httpx.AsyncClient) -> None:
    account = await register(client)
    wrong = await login(client, account.email, "not the password")
    unknown = await login(client, "nobody@example.com", account.password)
    malformed = await login(client, "not an address", account.password)
    for response in (wrong, unknown, malformed):
        assert response.status_code == 401
        assert response.json() == {
            "error": {"code": "invalid_credentials", "message": "invalid e-mail or password"}
        }


async def test_login_with_missing_fields_is_422_and_with_no_object_400(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/auth/login", json={"email": "a@example.com"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"password": ["is required"]}
    response = await client.post("/api/auth/login", json={"email": 1, "password": []})
    assert set(response.json()["error"]["fields"]) == {"email", "password"}
    response = await client.post(
        "/api/auth/login", content=b'"x"', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


async def test_login_of_a_banned_user_is_403(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    account = await register(client)
    await server.context.stores.users.set_role_and_ban(
        uuid.UUID(account.id), role=None, banned=True
    )
    response = await login(client, account.email, account.password)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "banned"
    # Without the right password a banned account looks like any other: 401.
    assert (await login(client, account.email, "wrong password")).status_code == 401


async def test_login_upgrades_a_hash_made_with_older_parameters(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    old = argon2.PasswordHasher(time_cost=1, memory_cost=512, parallelism=1)
    old_hash = old.hash("an old password")
    user = await server.context.stores.users.create(
        email="old@example.com", username="old", password_hash=old_hash
    )
    assert server.context.passwords.needs_rehash(old_hash)
    response = await login(client, "old@example.com", "an old password")
    assert response.status_code == 200, response.text
    upgraded = await server.context.stores.users.get(user.id)
    assert upgraded is not None
    assert upgraded.password_hash != old_hash
    assert not server.context.passwords.needs_rehash(upgraded.password_hash)
    # The session survived the upgrade, and the new hash verifies.
    assert (
        await client.get("/api/me", headers=bearer(response.json()["access_token"]))
    ).status_code == 200
    assert (await login(client, "old@example.com", "an old password")).status_code == 200


async def test_an_unknown_user_costs_one_full_verification_like_a_wrong_password(
    client: httpx.AsyncClient, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login naming no account runs one complete argon2id verification with the configured
    parameters, as a wrong password does (counted inside argon2-cffi), so the answer's timing does
    not tell which e-mails exist. The login times themselves are `make bench`'s (W4)."""
    account = await register(client)
    real_verify = argon2.PasswordHasher.verify
    completed: list[str] = []

    def counting_verify(self: argon2.PasswordHasher, hash: str, password: bytes) -> Literal[True]:
        try:
            return real_verify(self, hash, password)
        except argon2.exceptions.VerifyMismatchError:  # computed in full, then compared
            completed.append(hash)
            raise

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting_verify)
    for email in (account.email, "ghost@example.com"):
        completed.clear()
        assert (await login(client, email, "not the password!")).status_code == 401
        assert len(completed) == 1, email
        assert not server.context.passwords.needs_rehash(completed[0]), "configured parameters"


async def test_the_server_answers_other_requests_while_logins_are_verifying(
    client: httpx.AsyncClient, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 concurrent logins with their verifications held in flight: the server answers others.

    The first verification is held inside argon2-cffi (in its worker thread) until the test has
    been answered by the same server; the other logins queue on the hashing limiter meanwhile.
    Counted, not timed: the loop's stalls during login storms are `make bench`'s (W4 bystanders).
    """
    account = await register(client)
    real_verify = argon2.PasswordHasher.verify
    verifying = trio.Event()
    release = threading.Event()

    def held_verify(self: argon2.PasswordHasher, hash: str, password: bytes) -> Literal[True]:
        # On the event loop's own thread (a verification run inline) trio refuses this call.
        trio.from_thread.run_sync(verifying.set)
        if not release.wait(timeout=60):
            raise AssertionError("the test never released the verification")
        return real_verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", held_verify)
    statuses: list[int] = []

    async def one_login() -> None:
        statuses.append((await login(client, account.email, account.password)).status_code)

    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(one_login)
                await verifying.wait()
                assert (await client.get("/health")).status_code == 200
                me = await client.get("/api/me", headers=account.headers)
                assert me.status_code == 200, me.text
                assert statuses == []
                release.set()
    finally:
        release.set()
    assert statuses == [200] * 20


# --- tokens over HTTP ----------------------------------------------------------------------------


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(account: Account, **change: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": account.id,
        "iss": "parley",
        "aud": "parley",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "kind": "access",
        "ver": 0,
        "role": "registered",
    }
    claims.update(change)
    return claims


def _sign(claims: dict[str, object], key: str = TEST_JWT_SECRET) -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": "k1"})


async def test_forged_and_stale_access_tokens_are_401(client: httpx.AsyncClient) -> None:
    account = await register(client)
    assert (await client.get("/api/me", headers=bearer(_sign(_claims(account))))).status_code == 200
    forged = {
        "alg none": _b64({"alg": "none", "typ": "JWT", "kid": "k1"})
        + "."
        + _b64(_claims(account))
        + ".",
        "wrong key": _sign(_claims(account), "another-secret-0123456789-abcdefghijklmnop"),
        "wrong audience": _sign(_claims(account, aud="someone-else")),
        "wrong issuer": _sign(_claims(account, iss="someone-else")),
        "expired": _sign(_claims(account, iat=int(time.time()) - 1000, exp=int(time.time()) - 1)),
        "old version": _sign(_claims(account, ver=7)),
        "refresh token as bearer": account.refresh_token,
        "garbage": "x.y.z",
    }
    for name, token in forged.items():
        response = await client.get("/api/me", headers=bearer(token))
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "invalid_token", name
    assert (await client.get("/api/me")).status_code == 401
    assert (await client.get("/api/me", headers={"Authorization": "Basic abc"})).status_code == 401


def use_cookie(client: httpx.AsyncClient, refresh_token: str) -> None:
    """Put `refresh_token` in the jar as the server would have set it."""
    host = client.base_url.host
    client.cookies.clear()
    client.cookies.set("parley_refresh", refresh_token, domain=host, path="/api/auth")


# --- refresh, logout -----------------------------------------------------------------------------


async def test_refresh_rotates_and_reuse_kills_the_family(client: httpx.AsyncClient) -> None:
    account = await register(client)
    first = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200, first.text
    second_token = first.json()["refresh_token"]
    assert second_token != account.refresh_token
    assert (
        await client.get("/api/me", headers=bearer(first.json()["access_token"]))
    ).status_code == 200
    # The used token comes back: theft. 401, and the family's newest token dies with it.
    reuse = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert reuse.status_code == 401
    assert reuse.json()["error"]["code"] == "invalid_refresh_token"
    assert "reuse" in reuse.json()["error"]["message"]
    newest = await client.post("/api/auth/refresh", json={"refresh_token": second_token})
    assert newest.status_code == 401
    # Other sessions (families) of the same user are untouched.
    other = await login(client, account.email, account.password)
    again = await client.post(
        "/api/auth/refresh", json={"refresh_token": other.json()["refresh_token"]}
    )
    assert again.status_code == 200


async def test_a_refresh_token_presented_after_logout_is_revoked_by_logout_not_reused(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    assert (
        await client.post("/api/auth/logout", json={"refresh_token": account.refresh_token})
    ).status_code == 204
    again = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert again.status_code == 401
    error = again.json()["error"]
    assert error["code"] == "refresh_token_revoked"
    assert "revoked by logout" in error["message"]
    assert "reuse" not in error["message"]


async def test_a_rotated_token_presented_after_logout_is_still_reuse(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    rotated = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    newest = rotated.json()["refresh_token"]
    await client.post("/api/auth/logout", json={"refresh_token": newest})
    replayed = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "invalid_refresh_token"
    assert "reuse" in replayed.json()["error"]["message"]
    # The replay changes nothing about why the newest token is dead: the logout.
    logged_out = await client.post("/api/auth/refresh", json={"refresh_token": newest})
    assert logged_out.json()["error"]["code"] == "refresh_token_revoked"
    assert "revoked by logout" in logged_out.json()["error"]["message"]


async def test_revoked_refresh_tokens_name_what_revoked_them(client: httpx.AsyncClient) -> None:
    # Reuse: the thief's replay kills the family, and the victim's newest token says why.
    victim = await register(client)
    rotated = await client.post("/api/auth/refresh", json={"refresh_token": victim.refresh_token})
    await client.post("/api/auth/refresh", json={"refresh_token": victim.refresh_token})
    newest = await client.post(
        "/api/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]}
    )
    assert newest.status_code == 401
    assert newest.json()["error"]["code"] == "refresh_token_revoked"
    assert "reuse" in newest.json()["error"]["message"]
    # logout_all: every family of the user, each saying so.
    account = await register(client)
    other = (await login(client, account.email, account.password)).json()
    assert (await client.post("/api/auth/logout_all", headers=account.headers)).status_code == 204
    for token in (account.refresh_token, other["refresh_token"]):
        refused = await client.post("/api/auth/refresh", json={"refresh_token": token})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "refresh_token_revoked"
        assert "revoked by logout_all" in refused.json()["error"]["message"]


async def test_refresh_reads_the_cookie_when_the_body_has_no_token(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    # The registration set the cookie in the client's jar.
    assert client.cookies.get("parley_refresh") == account.refresh_token
    response = await client.post("/api/auth/refresh")
    assert response.status_code == 200, response.text
    rotated = response.json()["refresh_token"]
    assert client.cookies.get("parley_refresh") == rotated  # the server updated the cookie
    response = await client.post("/api/auth/refresh", json={})
    assert response.status_code == 200
    client.cookies.clear()


async def test_refresh_without_or_with_a_bad_token_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/auth/refresh")).status_code == 401
    response = await client.post("/api/auth/refresh", json={"refresh_token": "unknown"})
    assert response.status_code == 401
    assert "Max-Age=0" in response.headers["set-cookie"]  # a dead cookie is cleared
    response = await client.post("/api/auth/refresh", json={"refresh_token": 5})
    assert response.status_code == 422


async def test_expired_refresh_token_is_401(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    account = await register(client)
    await server.context.database.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second'"
    )
    response = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert response.status_code == 401


async def test_logout_revokes_this_session_only_and_clears_the_cookie(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    other = (await login(client, account.email, account.password)).json()
    assert client.cookies.get("parley_refresh") == other["refresh_token"]
    use_cookie(client, account.refresh_token)
    response = await client.post("/api/auth/logout")
    assert response.status_code == 204
    assert not response.content
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert client.cookies.get("parley_refresh") is None
    dead = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert dead.status_code == 401
    alive = await client.post("/api/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert alive.status_code == 200
    # Idempotent: no token, or an unknown one, is still 204.
    assert (await client.post("/api/auth/logout")).status_code == 204
    assert (await client.post("/api/auth/logout", json={"refresh_token": "zzz"})).status_code == 204
    assert (await client.post("/api/auth/logout", json={"refresh_token": 1})).status_code == 422


async def test_logout_all_kills_every_access_and_refresh_token_at_once(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    second = (await login(client, account.email, account.password)).json()
    response = await client.post("/api/auth/logout_all", headers=account.headers)
    assert response.status_code == 204
    for token in (account.access_token, second["access_token"]):
        refused = await client.get("/api/me", headers=bearer(token))
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == "the token has been revoked"
    for refresh in (account.refresh_token, second["refresh_token"]):
        refreshed = await client.post("/api/auth/refresh", json={"refresh_token": refresh})
        assert refreshed.status_code == 401
    assert (await client.post("/api/auth/logout_all", headers=account.headers)).status_code == 401
    fresh = await login(client, account.email, account.password)
    assert (
        await client.get("/api/me", headers=bearer(fresh.json()["access_token"]))
    ).status_code == 200


# --- forgot and reset ----------------------------------------------------------------------------


async def test_forgot_password_is_always_202_and_mails_only_existing_accounts(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    for email in (account.email.upper(), "nobody@example.com", "not an address"):
        response = await client.post("/api/auth/password/forgot", json={"email": email})
        assert response.status_code == 202
        assert response.json() == {"status": "accepted"}
    assert [m["subject"] for m in await mails_to(client, account.email)] == [
        "Reset your Parley password",
        "Confirm your Parley account",
    ]
    assert await mails_to(client, "nobody@example.com") == []
    assert (await client.post("/api/auth/password/forgot", json={})).status_code == 422


async def test_reset_sets_the_password_once_and_signs_out_everywhere(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    account = await register(client)
    await client.post("/api/auth/password/forgot", json={"email": account.email})
    token = await last_token(client, account.email, "Reset")
    # Stored hashed: the plaintext is nowhere in the table.
    stored = await server.context.database.fetch("SELECT token_hash FROM one_time_tokens")
    assert all(token.encode() not in row["token_hash"] for row in stored)
    short = await client.post(
        "/api/auth/password/reset", json={"token": token, "password": "short"}
    )
    assert short.status_code == 422
    assert "password" in short.json()["error"]["fields"]
    response = await client.post(
        "/api/auth/password/reset", json={"token": token, "password": "a brand new password"}
    )
    assert response.status_code == 204, response.text
    assert (await client.get("/api/me", headers=account.headers)).status_code == 401
    stale = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert stale.status_code == 401
    assert (await login(client, account.email, account.password)).status_code == 401
    assert (await login(client, account.email, "a brand new password")).status_code == 200
    again = await client.post(
        "/api/auth/password/reset", json={"token": token, "password": "yet another password"}
    )
    assert again.status_code == 422
    assert again.json()["error"]["fields"] == {"token": ["is invalid or has expired"]}


async def test_reset_tokens_expire_after_an_hour_and_only_the_newest_works(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    account = await register(client)
    await client.post("/api/auth/password/forgot", json={"email": account.email})
    first = await last_token(client, account.email, "Reset")
    lifetime = await server.context.database.fetchval(
        "SELECT extract(epoch FROM expires_at - inserted_at) FROM one_time_tokens "
        "WHERE purpose = 'reset'"
    )
    assert 3590 <= float(lifetime) <= 3610
    await client.post("/api/auth/password/forgot", json={"email": account.email})
    second = await last_token(client, account.email, "Reset")
    body = {"token": first, "password": "a brand new password"}
    assert (await client.post("/api/auth/password/reset", json=body)).status_code == 422
    await server.context.database.execute(
        "UPDATE one_time_tokens SET expires_at = now() - interval '1 second' "
        "WHERE purpose = 'reset'"
    )
    body = {"token": second, "password": "a brand new password"}
    assert (await client.post("/api/auth/password/reset", json=body)).status_code == 422
    # A confirmation token is not a reset token.
    confirm = await last_token(client, account.email, "Confirm")
    body = {"token": confirm, "password": "a brand new password"}
    assert (await client.post("/api/auth/password/reset", json=body)).status_code == 422


# --- throttling ----------------------------------------------------------------------------------


async def test_failed_logins_per_account_are_limited_with_retry_after(
    tmp_path: Path, database_url: str
) -> None:
    auth = {"login_failures_per_account": 3, "login_failure_window_seconds": 900}
    async with server_with(tmp_path, database_url, auth=auth) as (_, client):
        account = await register(client)
        # Successful logins never count.
        for _ in range(5):
            assert (await login(client, account.email, account.password)).status_code == 200
        for _ in range(3):
            assert (await login(client, account.email, "wrong password!")).status_code == 401
        for password in ("wrong password!", account.password):
            refused = await login(client, account.email.upper(), password)
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "rate_limited"
            assert 890 <= int(refused.headers["retry-after"]) <= 900
        # Another account from the same address is not affected by this account's limit.
        other = await register(client)
        assert (await login(client, other.email, other.password)).status_code == 200
        # Unknown accounts are limited the same way (the limiter reveals nothing).
        for _ in range(3):
            assert (await login(client, "ghost@example.com", "x")).status_code == 401
        assert (await login(client, "ghost@example.com", "x")).status_code == 429


async def test_register_forgot_and_failed_logins_are_limited_per_ip(
    tmp_path: Path, database_url: str
) -> None:
    auth = {"per_ip_requests_per_hour": 3, "login_failures_per_account": 100}
    async with server_with(tmp_path, database_url, auth=auth) as (_, client):
        accounts = [await register(client) for _ in range(3)]
        body = {"email": "four@example.com", "password": "long enough pw", "username": "four"}
        refused = await client.post("/api/auth/register", json=body)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 3500
        for _ in range(3):
            response = await client.post(
                "/api/auth/password/forgot", json={"email": "x@example.com"}
            )
            assert response.status_code == 202
        refused = await client.post("/api/auth/password/forgot", json={"email": "x@example.com"})
        assert refused.status_code == 429
        for n in range(3):
            assert (await login(client, f"nobody{n}@example.com", "x")).status_code == 401
        assert (await login(client, "nobody9@example.com", "x")).status_code == 429
        # Loopback is not exempt outside env "dev": even a right password waits.
        assert (await login(client, accounts[0].email, accounts[0].password)).status_code == 429


async def test_per_ip_limits_use_x_forwarded_for_only_from_trusted_proxies(
    tmp_path: Path, database_url: str
) -> None:
    async with server_with(
        tmp_path,
        database_url,
        auth={"per_ip_requests_per_hour": 2},
        server={"trusted_proxies": ("127.0.0.1/32",)},
    ) as (_, client):

        async def forgot(forwarded: str) -> int:
            response = await client.post(
                "/api/auth/password/forgot",
                json={"email": "x@example.com"},
                headers={"X-Forwarded-For": forwarded},
            )
            return response.status_code

        assert [await forgot("203.0.113.7") for _ in range(3)] == [202, 202, 429]
        # Another client behind the same proxy has its own budget...
        assert await forgot("203.0.113.8") == 202
        # ...and a client cannot escape by prepending a fake address: the proxy appended its own.
        assert await forgot("198.51.100.1, 203.0.113.7") == 429

    async with server_with(
        tmp_path / "untrusted", database_url, auth={"per_ip_requests_per_hour": 2}
    ) as (_, client):
        statuses = []
        for n in range(3):
            response = await client.post(
                "/api/auth/password/forgot",
                json={"email": "x@example.com"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
            statuses.append(response.status_code)
        assert statuses == [202, 202, 429]  # no trusted proxy: the header is ignored


async def test_every_json_endpoint_answers_400_to_a_body_that_is_not_an_object(
    client: httpx.AsyncClient,
) -> None:
    account = await register(client)
    endpoints = [
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/confirm"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/refresh"),
        ("POST", "/api/auth/logout"),
        ("POST", "/api/auth/password/forgot"),
        ("POST", "/api/auth/password/reset"),
        ("PATCH", "/api/me"),
        ("PATCH", "/api/me/password"),
        ("PATCH", "/api/me/email"),
        ("POST", "/api/users"),
        ("POST", "/api/tokens"),
        ("POST", "/api/session"),
    ]
    headers = {**account.headers, "Content-Type": "application/json"}
    for method, path in endpoints:
        for raw in (b"[1, 2]", b"{not json", b'"text"'):
            response = await client.request(method, path, content=raw, headers=headers)
            # POST /api/users needs a moderator: the role check comes before the body.
            expected = 403 if path == "/api/users" else 400
            assert response.status_code == expected, (method, path, raw, response.text)


async def test_the_refresh_cookie_is_secure_behind_a_trusted_tls_proxy(
    tmp_path: Path, database_url: str
) -> None:
    async with server_with(tmp_path, database_url, server={"trusted_proxies": ("127.0.0.1",)}) as (
        _,
        client,
    ):
        account = await register(client)
        response = await client.post(
            "/api/auth/login",
            json={"email": account.email, "password": account.password},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"},
        )
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    async with server_with(tmp_path / "direct", database_url) as (_, client):
        # Without a trusted proxy, a client cannot claim TLS: plain HTTP cookies stay non-Secure
        # (browsers would drop a Secure cookie set over http).
        account = await register(client)
        response = await client.post(
            "/api/auth/login",
            json={"email": account.email, "password": account.password},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert "Secure" not in response.headers["set-cookie"]
