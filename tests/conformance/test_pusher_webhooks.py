"""Pusher webhooks against the official clients: pusher-js 8 (and phoenix.js beside it) cause
them, real local receivers get them, and the SDKs' own validators check every request (the npm
`pusher` 5 SDK's `webhook(req).isValid()` in `pusher_js/webhooks.mjs`, then the PyPI `pusher` 3
SDK's `validate_webhook` here).

Starts the whole service (real PostgreSQL, real sockets, the default 3 s hold), two receivers
(one that answers 500 twice first), an application for each with `webhook_url` pointing at it,
writes the fixture `pusher_js/helpers.mjs` reads (plus the receivers' URLs), and runs the suite.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import partial
from pathlib import Path

import pusher
import pytest
import trio
from tests.conformance.organizations import owned_organization
from tests.conftest import make_settings
from tests.webhook_receiver import WebhookReceiver

from parley.integrations.applications import new_key, new_secret
from parley.service import RunningServer, serve
from parley.store.applications import NewApplication

HERE = Path(__file__).resolve().parent
SUITE = HERE / "pusher_js" / "webhooks.mjs"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not (HERE / "node_modules" / "pusher").exists(),
    reason="needs node and tests/conformance/node_modules (npm ci)",
)


async def test_webhooks_with_pusher_js_and_the_sdks_validators(
    nursery: trio.Nursery, tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url)
    assert settings.webhooks.hold_seconds == 3.0
    running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    receivers = {
        "main": await nursery.start(WebhookReceiver().serve),
        "flaky": await nursery.start(WebhookReceiver([500, 500]).serve),
    }
    stores = running.context.stores
    _, organization = await owned_organization(stores, "hooks")
    apps = {}
    for name, receiver in receivers.items():
        created = await stores.applications.create(
            NewApplication(
                organization_id=organization.id,
                name=name,
                app_key=new_key(),
                app_secret=new_secret(),
                webhook_url=receiver.url,
                client_events=True,
                max_connections=None,
            )
        )
        apps[name] = {"id": created.id, "key": created.app_key, "secret": created.app_secret}
    host, port = running.base_url.split("://", 1)[1].rsplit(":", 1)
    fixture = tmp_path / "webhooks_fixture.json"
    await trio.Path(fixture).write_text(
        json.dumps(
            {
                "host": host,
                "port": int(port),
                "http_base": running.base_url,
                "slug": organization.slug,
                "apps": apps,
                "receivers": {name: r.url for name, r in receivers.items()},
                "hold_ms": settings.webhooks.hold_seconds * 1000,
            }
        )
    )
    assert NODE is not None
    with trio.fail_after(120):
        result = await trio.run_process(
            [NODE, "--test", "--test-concurrency=1", str(SUITE)],
            cwd=HERE,
            env={**os.environ, "PARLEY_PUSHER_FIXTURE": str(fixture)},
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    report = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    assert result.returncode == 0, report[-20_000:]
    assert "# fail 0" in report, report[-20_000:]
    assert "# skipped 0" in report, report[-20_000:]
    # The same requests, through the PyPI SDK's validator.
    assert [r.status for r in receivers["flaky"].received[:3]] == [500, 500, 200]
    for name, receiver in receivers.items():
        app = apps[name]
        sdk = pusher.Pusher(app_id=str(app["id"]), key=app["key"], secret=app["secret"])
        assert receiver.received
        for got in receiver.received:
            body = sdk.validate_webhook(
                key=got.headers["x-pusher-key"],
                signature=got.headers["x-pusher-signature"],
                body=got.body.decode(),
            )
            assert body is not None and body["events"] == got.events
        tampered = receiver.received[0]
        assert (
            sdk.validate_webhook(
                key=tampered.headers["x-pusher-key"],
                signature=tampered.headers["x-pusher-signature"],
                body=tampered.body.decode().replace("channel", "channeL", 1),
            )
            is None
        )
    print(report[-600:])
