"""Signing in to the console, and every way in that must be refused."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import httpx
import trio

from parley.service import RunningServer, serve
from tests.api.operator.conftest import BEARER, Operator, console_settings, sign_in
from tests.conftest import TEST_OPERATOR_TOKEN
from tests.socket.conftest import Realtime

JSON_VIEWS = (
    "/debug/session",
    "/debug/overview",
    "/debug/nodes",
    "/debug/actors",
    "/debug/tree",
    "/debug/sockets",
    "/debug/topics",
    "/debug/audit",
    "/debug/webhooks",
)


async def test_the_console_without_a_session_is_the_sign_in_form(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get("/debug")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="token-sign-in"' in response.text and 'id="admin-sign-in"' in response.text
    assert 'id="view"' not in response.text  # not the console
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


async def test_a_token_in_the_url_signs_nobody_in_and_no_view_accepts_one(
    anonymous: httpx.AsyncClient,
) -> None:
    page = await anonymous.get("/debug", params={"token": TEST_OPERATOR_TOKEN})
    assert 'id="token-sign-in"' in page.text and "never accepted" in page.text
    assert "set-cookie" not in page.headers
    for path in (*JSON_VIEWS, "/metrics", "/debug/actors/registry-1"):
        for name in ("token", "access_token", "operator_token"):
            response = await anonymous.get(path, params={name: TEST_OPERATOR_TOKEN})
            assert response.status_code == 400, (path, name)
            assert response.json()["error"]["code"] == "token_in_url"
    # Not even alongside a good bearer header: the URL is the leak, whatever else is sent.
    response = await anonymous.get("/debug/actors", params={"token": "x"}, headers=BEARER)
    assert response.status_code == 400
    kill = await anonymous.post(
        "/debug/actors/registry-1/kill", params={"token": TEST_OPERATOR_TOKEN}
    )
    assert kill.status_code == 400
    signing_in = await anonymous.post(
        "/debug/sign-in", params={"token": TEST_OPERATOR_TOKEN}, json={}
    )
    assert signing_in.status_code == 400


async def test_signing_in_with_the_form_sets_a_strict_short_cookie_and_opens_the_console(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.post("/debug/sign-in", data={"token": TEST_OPERATOR_TOKEN})
    assert response.status_code == 303
    assert response.headers["location"] == "/debug"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("parley_console=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "SameSite=Strict" in cookie and "Path=/debug" in cookie and "Max-Age=900" in cookie
    assert "secure" not in attributes  # plain HTTP in the test environment
    page = await anonymous.get("/debug")
    assert 'id="view"' in page.text and 'src="/debug/static/console.js"' in page.text
    session = await anonymous.get("/debug/session")
    assert session.status_code == 200
    assert session.json()["operator"]["via"] == "operator_token"
    assert session.json()["csrf_token"]


async def test_the_static_files_are_served_and_nothing_else(anonymous: httpx.AsyncClient) -> None:
    for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        response = await anonymous.get(f"/debug/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
    for name in ("nope.js", "..%2fconsole.py", "__init__.py", ".hidden"):
        assert (await anonymous.get(f"/debug/static/{name}")).status_code == 404


async def test_wrong_tokens_are_refused_then_throttled_like_logins(
    anonymous: httpx.AsyncClient,
) -> None:
    form = await anonymous.post("/debug/sign-in", data={"token": "wrong"})
    assert form.status_code == 401 and "wrong operator token" in form.text
    assert 'id="token-sign-in"' in form.text and "set-cookie" not in form.headers
    for _ in range(9):  # auth.login_failures_per_account = 10
        response = await anonymous.post("/debug/sign-in", json={"token": "wrong"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_credentials"
    throttled = await anonymous.post("/debug/sign-in", json={"token": TEST_OPERATOR_TOKEN})
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) >= 1
    # The bearer path counts against the same limit: it is no way around it.
    assert (await anonymous.get("/debug/actors", headers=BEARER)).status_code == 429


async def test_bearer_guesses_are_throttled_too(anonymous: httpx.AsyncClient) -> None:
    for _ in range(10):
        response = await anonymous.get("/metrics", headers={"Authorization": "Bearer guess"})
        assert response.status_code == 401
    assert (await anonymous.get("/metrics", headers=BEARER)).status_code == 429


async def test_an_admin_signs_in_with_email_and_password_and_nobody_else_does(
    anonymous: httpx.AsyncClient, realtime: Realtime, server: RunningServer
) -> None:
    context = server.context
    password = "operator admin password"
    password_hash = await context.passwords.hash(password)
    for username, role in (("root", "admin"), ("mod", "moderator")):
        user = await context.stores.users.create(
            email=f"{username}@example.com",
            username=username,
            password_hash=password_hash,
            role=role,
            confirmed=True,
        )
        assert user.role == role
    admin = await anonymous.post(
        "/debug/sign-in", json={"email": "root@example.com", "password": password}
    )
    assert admin.status_code == 200
    assert admin.json()["operator"] == {
        "via": "admin",
        "user_id": admin.json()["operator"]["user_id"],
        "username": "root",
        "label": "root",
        "ip": "127.0.0.1",
    }
    moderator = await anonymous.post(
        "/debug/sign-in", json={"email": "mod@example.com", "password": password}
    )
    assert moderator.status_code == 403
    wrong = await anonymous.post(
        "/debug/sign-in", json={"email": "root@example.com", "password": "not it at all"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
    nobody = await anonymous.post(
        "/debug/sign-in", json={"email": "ghost@example.com", "password": password}
    )
    assert nobody.status_code == 401
    bad = await anonymous.post("/debug/sign-in", json={"email": ["root"], "password": 7})
    assert bad.status_code == 422
    assert set(bad.json()["error"]["fields"]) == {"email", "password"}
    empty = await anonymous.post("/debug/sign-in", json={})
    assert empty.status_code == 422
    # An admin's access token works as a bearer; a registered user's is refused.
    admin_user = await context.stores.users.by_email("root@example.com")
    assert admin_user is not None
    token, _ = context.tokens.issue_access(admin_user.id, "admin", admin_user.token_version)
    registered = await realtime.user()
    assert (await anonymous.get("/debug/nodes", headers=_bearer(token))).status_code == 200
    refused = await anonymous.get("/debug/nodes", headers=_bearer(registered.token))
    assert refused.status_code == 403


async def test_a_forged_or_expired_cookie_is_no_session(
    anonymous: httpx.AsyncClient, operator: Operator, server: RunningServer
) -> None:
    anonymous.cookies.set("parley_console", "forged-value", path="/debug")
    assert 'id="token-sign-in"' in (await anonymous.get("/debug")).text
    refused = await anonymous.get("/debug/actors")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "not_signed_in"

    assert (await operator.get("/debug/nodes")).status_code == 200
    sessions = server.console.gate.sessions
    ttl = server.context.settings.debug.session_ttl_seconds
    sessions.clock = lambda: time.monotonic() + ttl + 1
    expired = await operator.get("/debug/nodes")
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "not_signed_in"
    assert 'id="token-sign-in"' in (await operator.http.get("/debug")).text
    assert len(sessions) == 0


async def test_a_cross_site_post_without_the_csrf_token_does_nothing(
    operator: Operator, realtime: Realtime, server: RunningServer
) -> None:
    alice, bob = await realtime.users(2)
    conversation_id = await realtime.group(alice, bob)
    await server.runtime.chat.send(conversation_id, alice.id, "wake it", None)
    victim = server.runtime.registry.lookup(f"conversation:{conversation_id}")
    assert victim is not None
    path = f"/debug/actors/{victim.id}/kill"
    no_token = await operator.http.post(path, json={})
    assert no_token.status_code == 403 and no_token.json()["error"]["code"] == "csrf"
    wrong = await operator.http.post(path, json={}, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        response = await operator.http.post(
            path, json={}, headers={"X-CSRF-Token": operator.csrf_token, **headers}
        )
        assert response.status_code == 403, headers
        assert response.json()["error"]["code"] == "cross_origin"
    assert victim.statistics().restarts == 0 and victim.statistics().last_error is None
    entries = await server.context.stores.audit.page(limit=10, before=None)
    assert [e.action for e in entries] == ["console.sign_in"]
    # The same request from the console itself goes through.
    same_origin = {"X-CSRF-Token": operator.csrf_token, "Origin": server.base_url}
    done = await operator.http.post(path, json={}, headers=same_origin)
    assert done.status_code == 202


async def test_signing_out_ends_the_session(operator: Operator) -> None:
    cookie = operator.http.cookies.get("parley_console")
    assert cookie
    refused = await operator.http.post("/debug/sign-out")
    assert refused.status_code == 403  # no CSRF token: a page elsewhere cannot sign you out
    out = await operator.post("/debug/sign-out")
    assert out.status_code == 204
    assert (
        "parley_console=" in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    )
    operator.http.cookies.set("parley_console", cookie, path="/debug")
    assert (await operator.get("/debug/nodes")).status_code == 401


async def test_in_prod_the_console_refuses_to_sign_in_over_plain_http(
    tmp_path: Path, database_url: str, nursery: trio.Nursery
) -> None:
    settings = console_settings(
        tmp_path, database_url, server={"env": "prod", "trusted_proxies": ["127.0.0.1"]}
    )
    server: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        refused = await http.post("/debug/sign-in", json={"token": TEST_OPERATOR_TOKEN})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "tls_required"
        form = await http.post("/debug/sign-in", data={"token": TEST_OPERATOR_TOKEN})
        assert form.status_code == 403 and "HTTPS" in form.text
        # Behind a TLS-terminating proxy we trust, the cookie is Secure.
        behind_tls = await http.post(
            "/debug/sign-in",
            json={"token": TEST_OPERATOR_TOKEN},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert behind_tls.status_code == 200
        assert "Secure" in behind_tls.headers["set-cookie"]


async def test_in_prod_plain_http_is_allowed_when_configured(
    tmp_path: Path, database_url: str, nursery: trio.Nursery
) -> None:
    settings = console_settings(
        tmp_path, database_url, server={"env": "prod"}, debug={"allow_insecure_console": True}
    )
    server: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        signed_in = await sign_in(http)
        assert (await signed_in.get("/debug/nodes")).status_code == 200


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
