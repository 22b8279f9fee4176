"""The official phoenix 1.8.16 client against a live Parley: runs the Node suite of this directory.

Starts the whole service (real PostgreSQL, real sockets) with the settings the suite assumes
(README.md: a 2 s idle timeout, a channel limit of 4, an origin allow-list), creates the users and
conversations of the fixture file, and runs `node --test --test-concurrency=1 tests/conformance/`.
The test passes when Node exits 0; Node's report is printed on failure. It runs three times: over
the fast path, over ASGI, and over long polling (phoenix.js's `LongPoll` and a raw long-poll
client), where the tests that only mean something on a WebSocket are skipped with their reason.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from tests.conftest import TEST_OPERATOR_TOKEN, make_settings

from parley.config import Settings
from parley.service import RunningServer, serve

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not (HERE / "node_modules" / "phoenix").exists(),
    reason="needs node and tests/conformance/node_modules (npm ci)",
)


LONGPOLL_SKIP = "# SKIP long polling: "
"""How the suite marks a test skipped over long polling (`webSocketOnly` in helpers.mjs)."""


@pytest.fixture(params=["wsproto", "asgi", "longpoll"])
def transport(request: pytest.FixtureRequest) -> str:
    # The socket transports: parley serve's own listener and ASGI (docs/fast_path.md), and long
    # polling (requests to Hypercorn through the same listener).
    name: str = request.param
    return name


@pytest.fixture
def settings(transport: str, tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        socket={
            "heartbeat_timeout_seconds": 2.0,
            "max_channels_per_socket": 4,
            "allowed_origins": ["//localhost", "//127.0.0.1"],
            "fast_path": transport != "asgi",
            # A client that stops polling (a closed phoenix.js socket) is gone this soon, as a
            # closed WebSocket is at once (item 34).
            "longpoll_session_timeout_seconds": 2.0,
        },
    )


async def _fixture(
    running: RunningServer, path: Path, settings: Settings, transport: str
) -> dict[str, Any]:
    context = running.context
    users: list[dict[str, Any]] = []
    for index, role in enumerate(("registered",) * 4 + ("admin", "registered")):
        name = f"conf{index}"
        stored = await context.stores.users.create(
            email=f"{name}@example.com",
            username=name,
            password_hash="x" * 20,
            role=role,
            confirmed=True,
        )
        token, _ = context.tokens.issue_access(stored.id, role, stored.token_version)
        users.append({"id": str(stored.id), "token": token, "_id": stored.id})
    alice, bob, carol, _dave, admin, erin = users
    # 43_integrations.test.mjs: makes an organization and an application through the API.
    integrator = await context.stores.users.create(
        email="integrator@example.com",
        username="integrator",
        password_hash="x" * 20,
        role="registered",
        confirmed=True,
    )
    integrator_token, _ = context.tokens.issue_access(
        integrator.id, "registered", integrator.token_version
    )
    conversations = context.stores.conversations
    group = await conversations.create_group(
        alice["_id"], "conformance", [bob["_id"], carol["_id"], admin["_id"], erin["_id"]]
    )
    direct, _ = await conversations.open_direct(alice["_id"], bob["_id"])
    host_port = running.base_url.split("://", 1)[1]
    port = host_port.rsplit(":", 1)[1]
    data = {
        "url": f"ws://{host_port}/socket",
        "http_base": running.base_url,
        "operator_token": TEST_OPERATOR_TOKEN,
        "heartbeat_timeout_seconds": settings.socket.heartbeat_timeout_seconds,
        "max_channels_per_socket": settings.socket.max_channels_per_socket,
        "conversation_id": str(group.id),
        "direct_conversation_id": str(direct.id),
        "users": [{"id": u["id"], "token": u["token"]} for u in users[:4]],
        "admin": {"id": admin["id"], "token": admin["token"]},
        "users_1815": [{"id": erin["id"], "token": erin["token"]}],
        "integrations_user": {"id": str(integrator.id), "token": integrator_token},
        "allowed_origin": f"http://localhost:{port}",
        "disallowed_origin": "http://evil.example",
        "transport": "longpoll" if transport == "longpoll" else "websocket",
    }
    await trio.Path(path).write_text(json.dumps(data, indent=2))
    return data


async def test_phoenix_js_conformance_suite(
    transport: str, settings: Settings, nursery: trio.Nursery, tmp_path: Path
) -> None:
    running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    fixture_path = tmp_path / "fixture.json"
    data = await _fixture(running, fixture_path, settings, transport)
    assert NODE is not None
    env = {
        **os.environ,
        "PARLEY_URL": data["url"],
        "PARLEY_CONFORMANCE_FIXTURE": str(fixture_path),
    }
    with trio.fail_after(120):
        result = await trio.run_process(
            [NODE, "--test", "--test-concurrency=1", str(HERE)],
            cwd=HERE.parent.parent,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    report = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    assert result.returncode == 0, report[-20_000:]
    assert "# fail 0" in report, report[-20_000:]
    # Every test ran: none was skipped for a missing fixture field or server setting; over long
    # polling only the WebSocket-only tests were, each with its reason.
    skipped = report.count(LONGPOLL_SKIP) if transport == "longpoll" else 0
    assert f"# skipped {skipped}" in report, report[-20_000:]
    assert (skipped > 0) == (transport == "longpoll"), report[-20_000:]
    counters = running.context.sockets.counters
    if transport == "longpoll":  # every session of the run was a long-poll one
        assert counters["connections_opened"] == counters["longpoll_opened"], counters
    else:  # only 41_longpoll.test.mjs's sessions were
        assert 0 < counters["longpoll_opened"] < counters["connections_opened"], counters
    print(report[-600:])
