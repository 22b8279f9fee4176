"""The official pusher-js 8 client against a live Parley: runs the Node suite in `pusher_js/`.

Starts the whole service (real PostgreSQL, real sockets), makes an organization and its
applications (one with client events on, one without, one archived, one with a quota of one
connection) straight in the store, writes the fixture `pusher_js/helpers.mjs` reads, and runs
`node --test` over the suite's files. Twice: over the fast path and over ASGI. The HTTP API's
files drive the official server SDKs beside pusher-js: the npm `pusher` 5 in Node, the PyPI
`pusher` 3 through `pusher_js/pusher_sdk.py` with this interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from tests.conformance.organizations import owned_organization
from tests.conftest import make_settings

from parley.config import Settings
from parley.integrations.applications import new_key, new_secret
from parley.service import RunningServer, serve
from parley.store.applications import ApplicationChanges, NewApplication

HERE = Path(__file__).resolve().parent
SUITE = HERE / "pusher_js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not (HERE / "node_modules" / "pusher-js").exists(),
    reason="needs node and tests/conformance/node_modules (npm ci)",
)


@pytest.fixture(params=["wsproto", "asgi"])
def transport(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def settings(transport: str, tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        socket={"fast_path": transport != "asgi"},
        pusher={"activity_timeout_seconds": 120},
    )


async def _fixture(running: RunningServer, path: Path, transport: str) -> dict[str, Any]:
    stores = running.context.stores
    owner_id, organization = await owned_organization(stores, "pusher")
    apps: dict[str, Any] = {}
    for name, client_events, quota in (
        ("main", True, None),
        ("quiet", False, None),
        ("archived", True, None),
        ("single", True, 1),
    ):
        created = await stores.applications.create(
            NewApplication(
                organization_id=organization.id,
                name=name,
                app_key=new_key(),
                app_secret=new_secret(),
                webhook_url=None,
                client_events=client_events,
                max_connections=quota,
            )
        )
        apps[name] = {"id": created.id, "key": created.app_key, "secret": created.app_secret}
    archived = apps["archived"]
    await stores.applications.update(archived["key"], ApplicationChanges(archived=True), owner_id)
    host, port = running.base_url.split("://", 1)[1].rsplit(":", 1)
    data = {
        "host": host,
        "port": int(port),
        "http_base": running.base_url,
        "slug": organization.slug,
        "apps": apps,
        "transport": transport,
        "python": sys.executable,
        "pusher_sdk": str(SUITE / "pusher_sdk.py"),
    }
    await trio.Path(path).write_text(json.dumps(data, indent=2))
    return data


async def test_pusher_js_suite(
    transport: str, settings: Settings, nursery: trio.Nursery, tmp_path: Path
) -> None:
    running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    fixture_path = tmp_path / "pusher_fixture.json"
    await _fixture(running, fixture_path, transport)
    assert NODE is not None
    env = {**os.environ, "PARLEY_PUSHER_FIXTURE": str(fixture_path)}
    files = sorted(str(p) for p in SUITE.glob("pusher_*.mjs"))
    with trio.fail_after(240):
        result = await trio.run_process(
            [NODE, "--test", "--test-concurrency=1", *files],
            cwd=HERE,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    report = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    assert result.returncode == 0, report[-20_000:]
    assert "# fail 0" in report, report[-20_000:]
    assert "# skipped 0" in report, report[-20_000:]
    print(report[-600:])
