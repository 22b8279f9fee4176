"""The access log (`parley.access`): one line per request and per socket upgrade, on both socket
transports, with the query's parameter names but never their values."""

from __future__ import annotations

import logging
import re
import secrets
from functools import partial
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

from parley.api.access_log import logged_target
from parley.service import serve
from tests.conftest import make_settings
from tests.phoenix_client import open_phoenix_client
from tests.socket.rawwire import http_request, upgrade_headers

if TYPE_CHECKING:
    from pathlib import Path

    from parley.config import Settings
    from parley.service import RunningServer

LOG_SECONDS = 10
LINE = re.compile(
    r"^127\.0\.0\.1:\d+ (?P<method>[A-Z]+) (?P<target>\S+) (?P<status>\d{3}) \d+\.\d ms$"
)
SECRET = "s3cret-value"
BARE_TOKEN = secrets.token_urlsafe(32)
"""A value sent without a name (43 characters): too long to be taken for one."""


@pytest.fixture(params=[True, False], ids=["fast_path", "asgi"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, socket={"fast_path": request.param})


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "parley.access"]


async def wait_for_line(caplog: pytest.LogCaptureFixture, pattern: str) -> re.Match[str]:
    """The first access line whose method, target and status match `pattern` (Hypercorn writes a
    request's line after its response, so the client may see the response first)."""
    with trio.fail_after(LOG_SECONDS):
        while True:
            for line in access_lines(caplog):
                match = LINE.match(line)
                assert match is not None, f"malformed access line {line!r}"
                if re.fullmatch(pattern, " ".join(match.group("method", "target", "status"))):
                    return match
            await trio.sleep(0.01)


async def test_requests_and_socket_upgrades_are_logged_without_query_values(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parley.access")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        assert (await http.get(f"/api/users?limit=1&token={SECRET}")).status_code == 401
        assert (await http.get("/health")).status_code == 200
        registered = await http.post(
            "/api/auth/register",
            json={"email": "log@example.com", "password": SECRET * 2, "username": "logger"},
        )
        assert registered.status_code == 201
    token = registered.json()["access_token"]
    socket_base = server.base_url.replace("http://", "ws://") + "/socket"
    async with open_phoenix_client(socket_base, token=token) as client:
        assert (await client.heartbeat()).ok
    refused = await http_request(
        server.base_url,
        "GET",
        f"/socket/websocket?vsn=2.0.0&token={SECRET}&{BARE_TOKEN}",
        upgrade_headers(),
    )
    assert refused.status == 403

    await wait_for_line(caplog, r"GET /api/users\?limit&token 401")
    await wait_for_line(caplog, r"GET /health 200")
    await wait_for_line(caplog, r"POST /api/auth/register 201")
    upgraded = await wait_for_line(caplog, r"GET /socket/websocket\?\S+ 101")
    assert set(upgraded["target"].partition("?")[2].split("&")) == {"vsn", "token"}
    await wait_for_line(caplog, r"GET /socket/websocket\?vsn&token&\* 403")
    for secret in (SECRET, BARE_TOKEN, token):
        assert secret not in caplog.text


@pytest.mark.parametrize("fast_path", [True, False])
async def test_access_log_off_writes_no_line(
    tmp_path: Path,
    database_url: str,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    fast_path: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="parley.access")
    settings = make_settings(
        tmp_path, database_url, server={"access_log": False}, socket={"fast_path": fast_path}
    )
    server: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    refused = await http_request(
        server.base_url, "GET", "/socket/websocket?token=x", upgrade_headers()
    )
    assert refused.status == 403
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        for _ in range(3):  # one kept-alive connection: each request starts after the last ended
            assert (await http.get("/health")).status_code == 200
    assert access_lines(caplog) == []


@pytest.mark.parametrize(
    ("raw_path", "query", "logged"),
    [
        (b"/api/users", b"", "/api/users"),
        (b"/api/users", b"limit=5&before=abc", "/api/users?limit&before"),
        (
            b"/confirm",
            b"token=abc&jwt=x&password=p&signature=s",
            "/confirm?token&jwt&password&signature",
        ),
        (b"/a%20b", b"flag&=orphan&x=1=2", "/a%20b?flag&x"),
        (b"/s", b"eyJhbGciOiJIUzI1NiJ9.e30.c2ln&vsn=2.0.0", "/s?*&vsn"),
        (b"/s", b"plt_" + b"A" * 43, "/s?*"),
        (b"/p", b"na%6De=v&\xff=v", "/p?*&*"),
    ],
)
def test_the_logged_target_keeps_parameter_names_and_drops_values(
    raw_path: bytes, query: bytes, logged: str
) -> None:
    assert logged_target(raw_path, query) == logged
