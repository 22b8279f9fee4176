"""End users of an application on the Phoenix socket (DESIGN §4.2, §5): tokens their
application's backend signed, the topics those tokens open and keep closed, presence keyed by the
end user's id, the connection quota, and what archiving or rotating the secret does to them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import jwt
import pytest
from trio_websocket import ConnectionRejected

from tests.api.account_helpers import server_with
from tests.api.conftest import register
from tests.api.integration_helpers import new_app
from tests.api.test_triggers import socket_base
from tests.phoenix_client import open_phoenix_client

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from parley.service import RunningServer


async def upgrade_status(server: RunningServer, token: str) -> int:
    try:
        async with open_phoenix_client(socket_base(server), token=token):
            return 101
    except ConnectionRejected as exc:
        return int(exc.status_code)


async def test_tokens_of_another_app_expired_or_too_long_lived_are_refused_before_upgrade(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    other = await new_app(client)
    now = int(time.time())
    assert await upgrade_status(server, app.end_user_token("u1")) == 101
    # Claiming app's key but signed with the other app's secret.
    assert await upgrade_status(server, app.end_user_token("u1", secret=other.secret)) == 403
    assert await upgrade_status(server, app.end_user_token("u1", ttl=-5)) == 403
    assert await upgrade_status(server, app.end_user_token("u1", ttl=86_400 + 300)) == 403
    assert await upgrade_status(server, app.end_user_token("x" * 129)) == 403
    unknown = jwt.encode({"sub": "u", "exp": now + 60}, app.secret, headers={"kid": "f" * 20})
    assert await upgrade_status(server, unknown) == 403
    no_kid = jwt.encode({"sub": "u", "exp": now + 60}, app.secret)
    assert await upgrade_status(server, no_kid) == 403


async def test_an_end_user_joins_only_their_apps_allowed_topics(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    other = await new_app(client)
    person = await register(client)
    async with open_phoenix_client(socket_base(server), token=app.end_user_token("alice")) as end:
        for topic in (f"app:{app.key}", f"app:{app.key}:news", f"app:{app.key}:user:alice"):
            assert (await end.join(topic)).ok, topic
        for topic in (
            f"app:{app.key}:user:bob",  # another end user's topic
            f"app:{app.key}:private-orders",  # private and presence need listing in `channels`
            f"app:{app.key}:presence-lobby",
            f"app:{app.key}:bad channel",
            f"app:{other.key}",  # another app's topics
            f"app:{other.key}:news",
            f"app:{other.key}:user:alice",
            f"app:{app.key}x",
            f"user:{person.id}",  # Parley's own topics
            "system:general",
            "room:chat",
        ):
            reply = await end.join(topic)
            assert reply.status == "error", topic
            assert reply.response == {"reason": "unauthorized"}, topic
    # A Parley user's own token opens no application topic.
    async with open_phoenix_client(socket_base(server), token=person.access_token) as own:
        assert (await own.join(f"app:{app.key}")).response == {"reason": "unauthorized"}


async def test_the_channels_claim_allows_listed_names_and_prefixes_only(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    token = app.end_user_token("carol", channels=["private-orders", "room-*"])
    async with open_phoenix_client(socket_base(server), token=token) as end:
        for topic in ("private-orders", "room-1", "room-"):
            assert (await end.join(f"app:{app.key}:{topic}")).ok, topic
        for topic in ("private-other", "news", "presence-room-1"):
            assert (await end.join(f"app:{app.key}:{topic}")).status == "error", topic
        assert (await end.join(f"app:{app.key}")).ok


async def test_presence_channels_are_keyed_by_the_end_users_id_with_their_info(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    topic = f"app:{app.key}:presence-lobby"

    def token(subject: str) -> str:
        return app.end_user_token(subject, channels=["presence-*"], user_info={"name": subject})

    url = socket_base(server)
    async with open_phoenix_client(url, token=token("ann")) as ann:
        assert (await ann.join(topic)).ok
        state = await ann.receive("presence_state", topic)
        assert list(state.payload) == ["ann"]
        assert state.payload["ann"]["metas"][0]["user_info"] == {"name": "ann"}
        async with open_phoenix_client(url, token=token("ben")) as ben:
            assert (await ben.join(topic)).ok
            state = await ben.receive("presence_state", topic)
            assert sorted(state.payload) == ["ann", "ben"]
            diff = await ann.receive("presence_diff", topic)
            while "ben" not in diff.payload["joins"]:
                diff = await ann.receive("presence_diff", topic)
        diff = await ann.receive("presence_diff", topic)
        while "ben" not in diff.payload["leaves"]:
            diff = await ann.receive("presence_diff", topic)


async def test_the_connection_quota_refuses_sockets_past_it(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client, max_connections=2)
    url = socket_base(server)
    async with (
        open_phoenix_client(url, token=app.end_user_token("a")),
        open_phoenix_client(url, token=app.end_user_token("b")),
    ):
        assert await upgrade_status(server, app.end_user_token("c")) == 429
        other = await new_app(client)  # another application's quota is its own
        assert await upgrade_status(server, other.end_user_token("c")) == 101
    assert await upgrade_status(server, app.end_user_token("c")) == 101


async def test_a_rotated_secret_works_through_its_grace_and_a_second_rotation_retires_it(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    app = await new_app(client)
    url = socket_base(server)
    first = app.end_user_token("old")
    async with open_phoenix_client(url, token=first) as old:
        assert (await old.join(f"app:{app.key}")).ok
        rotated = await client.post(f"{app.base}/secret", headers=app.admin.headers)
        assert rotated.status_code == 200
        assert rotated.json()["previous_secret_expires_at"] is not None
        second_secret = rotated.json()["app_secret"]
        assert second_secret != app.secret
        # During the grace period the old secret still signs new sockets.
        assert await upgrade_status(server, first) == 101
        assert (await old.join(f"app:{app.key}:news")).ok
        second = app.end_user_token("new", secret=second_secret)
        async with open_phoenix_client(url, token=second) as new:
            assert (await new.join(f"app:{app.key}")).ok
            again = await client.post(f"{app.base}/secret", headers=app.admin.headers)
            assert again.status_code == 200
            # The first secret is two rotations old now: its sockets close, the second's stay.
            assert await old.wait_closed() == (1001, "secret retired")
            assert await upgrade_status(server, first) == 403
            assert (await new.join(f"app:{app.key}:news")).ok


@pytest.mark.parametrize("grace", [1])
async def test_sockets_of_the_old_secret_close_when_the_grace_period_ends(
    tmp_path: Path, database_url: str, grace: int
) -> None:
    async with server_with(
        tmp_path, database_url, integrations={"secret_grace_seconds": grace}
    ) as (server, client):
        app = await new_app(client)
        async with open_phoenix_client(socket_base(server), token=app.end_user_token("o")) as old:
            assert (await old.join(f"app:{app.key}")).ok
            rotated = await client.post(f"{app.base}/secret", headers=app.admin.headers)
            assert rotated.status_code == 200
            assert await old.wait_closed(timeout=30) == (1001, "secret retired")
        assert await upgrade_status(server, app.end_user_token("o")) == 403
