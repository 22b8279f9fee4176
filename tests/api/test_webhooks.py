"""Webhooks through the whole service: an application's webhook settings over REST (bad URLs
refused when they are set, with the documented 422), events caused by Phoenix end-user sockets
recorded and delivered to a real local receiver (checked with the PyPI SDK's own validator),
and what operators see in `/debug/webhooks` and `/metrics`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pusher
import pytest
import trio

from parley.config import Settings
from tests.api.integration_helpers import App, new_app
from tests.api.test_triggers import socket_base
from tests.conftest import TEST_OPERATOR_TOKEN, make_settings
from tests.phoenix_client import open_phoenix_client
from tests.polling import eventually
from tests.webhook_receiver import WebhookReceiver

if TYPE_CHECKING:
    import httpx

    from parley.service import RunningServer

BEARER = {"Authorization": f"Bearer {TEST_OPERATOR_TOKEN}"}
HOLD = 0.5


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, webhooks={"hold_seconds": HOLD})


@pytest.fixture
async def hook(nursery: trio.Nursery) -> WebhookReceiver:
    found: WebhookReceiver = await nursery.start(WebhookReceiver().serve)
    return found


BAD_URLS: list[Any] = [
    "ftp://example.com/hook",
    "http://",
    "example.com/hook",
    "http://user:password@example.com/hook",
    "http://example.com/hook#part",
    "http://example.com:99999/hook",
    "http://example.com/a hook",
    "http://example.com/\x00",
    "https://" + "a" * 2000 + ".com",
    42,
]


async def test_a_bad_webhook_url_is_refused_when_it_is_set(
    client: httpx.AsyncClient, hook: WebhookReceiver
) -> None:
    app = await new_app(client)
    create = f"/api/organizations/{app.slug}/applications"
    for bad in BAD_URLS:
        for response in (
            await client.post(
                create, json={"name": "x", "webhook_url": bad}, headers=app.admin.headers
            ),
            await client.patch(app.base, json={"webhook_url": bad}, headers=app.admin.headers),
        ):
            assert response.status_code == 422, (bad, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid"
            assert list(error["fields"]) == ["webhook_url"], bad
    for field in ("webhook_batching", "webhook_subscription_count"):
        response = await client.patch(app.base, json={field: "yes"}, headers=app.admin.headers)
        assert response.status_code == 422
        assert list(response.json()["error"]["fields"]) == [field]
    changed = await client.patch(
        app.base,
        json={"webhook_url": hook.url, "webhook_batching": True},
        headers=app.admin.headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["webhook_url"], body["webhook_batching"], body["webhook_subscription_count"]) == (
        hook.url,
        True,
        False,
    )


def validated(app: App, received: Any) -> list[dict[str, Any]]:
    sdk = pusher.Pusher(app_id=str(app.id), key=app.key, secret=app.secret)
    body = sdk.validate_webhook(
        key=received.headers["x-pusher-key"],
        signature=received.headers["x-pusher-signature"],
        body=received.body.decode(),
    )
    assert body is not None, "the pusher SDK refused the webhook"
    found: list[dict[str, Any]] = body["events"]
    return found


async def test_phoenix_end_users_cause_channel_and_member_webhooks_that_operators_see(
    client: httpx.AsyncClient, server: RunningServer, hook: WebhookReceiver
) -> None:
    app = await new_app(client, webhook_url=hook.url, webhook_subscription_count=True)
    url = socket_base(server)
    presence_topic = f"app:{app.key}:presence-lobby"
    token = app.end_user_token("alice", channels=["presence-*", "news"], user_info={"n": 1})
    async with open_phoenix_client(url, token=token) as alice:
        assert (await alice.join(f"app:{app.key}:news")).ok
        assert (await alice.join(presence_topic)).ok
        await hook.wait_for(lambda _: len(hook.events("member_added")) == 1)
        await hook.wait_for(lambda _: len(hook.events("channel_occupied")) == 2)
        assert (await alice.leave(presence_topic)).ok
        await hook.wait_for(lambda _: len(hook.events("member_removed")) == 1)
    await hook.wait_for(lambda _: len(hook.events("channel_vacated")) == 2)
    events = [e for received in hook.received for e in validated(app, received)]
    names = {(e["name"], e["channel"]) for e in events}
    assert names >= {
        ("channel_occupied", "news"),
        ("channel_occupied", "presence-lobby"),
        ("member_added", "presence-lobby"),
        ("member_removed", "presence-lobby"),
        ("channel_vacated", "presence-lobby"),
        ("channel_vacated", "news"),
    }
    assert {e["user_id"] for e in events if e["name"].startswith("member_")} == {"alice"}
    counts = [e for e in events if e["name"] == "subscription_count"]
    assert counts[0] == {"name": "subscription_count", "channel": "news", "subscription_count": 1}
    assert all(e["channel"] == "news" for e in counts)  # none for presence channels

    assert (await client.get("/debug/webhooks")).status_code == 401
    shown: dict[str, Any] = {}

    async def recorded() -> bool:  # the last answers may still be being recorded
        view = await client.get("/debug/webhooks", headers=BEARER)
        assert view.status_code == 200, view.text
        shown.update(view.json())
        return bool(shown["outbox"]["pending"] == 0)

    await eventually(recorded, 10)
    assert shown["settings"]["hold_seconds"] == HOLD
    assert shown["settings"]["give_up_seconds"] == 300
    assert shown["deliverer"]["delivered"] >= len(events)
    assert shown["recorder"]["recorded"]["channel_occupied"] == 2
    assert {row["state"] for row in shown["recent"]} == {"delivered"}
    assert shown["outbox"]["pending"] == 0
    one = await client.get(f"/debug/webhooks?app_id={app.id}&limit=1", headers=BEARER)
    assert [row["app_id"] for row in one.json()["recent"]] == [app.id]
    bad = await client.get("/debug/webhooks?limit=0", headers=BEARER)
    assert bad.status_code == 422

    metrics = (await client.get("/metrics", headers=BEARER)).text
    delivered = [
        line for line in metrics.splitlines() if line.startswith("parley_webhook_events_delivered")
    ]
    assert delivered and float(delivered[0].split()[-1]) >= len(events)
    for family in (
        "parley_webhook_request_failures_total",
        "parley_webhook_retries_total",
        "parley_webhook_events_given_up_total",
        'parley_webhook_events_recorded_total{event="member_added"}',
    ):
        assert family in metrics, family
