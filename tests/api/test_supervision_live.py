"""Supervision inside a running server: killed actors come back, siblings and messages are
untouched."""

from __future__ import annotations

import httpx
import trio

from parley.service import RunningServer
from tests.api.conftest import Account, register
from tests.api.test_conversations import open_group, send
from tests.conftest import TEST_OPERATOR_TOKEN

OPERATOR = {"Authorization": f"Bearer {TEST_OPERATOR_TOKEN}"}


async def actors_by_key(client: httpx.AsyncClient) -> dict[str, dict[str, object]]:
    response = await client.get("/debug/actors", params={"limit": 500}, headers=OPERATOR)
    assert response.status_code == 200
    assert response.json()["total"] <= 500
    return {a["key"]: a for a in response.json()["actors"] if a["key"]}


async def test_a_killed_conversation_actor_restarts_and_no_sibling_does(
    client: httpx.AsyncClient,
) -> None:
    alice, bob = await register(client), await register(client)
    first, second = await open_group(client, alice, bob), await open_group(client, alice, bob)
    await send(client, alice, first, "wake the first actor")
    await send(client, alice, second, "wake the second actor")
    before = await actors_by_key(client)
    victim, sibling = before[f"conversation:{first}"], before[f"conversation:{second}"]
    assert victim["restarts"] == 0 and sibling["restarts"] == 0

    killed = await client.post(f"/debug/actors/{victim['id']}/kill", headers=OPERATOR)
    assert killed.status_code == 202
    with trio.fail_after(30):
        # Polls the operator's HTTP view on purpose: that view is what is under test.
        while (await actors_by_key(client))[f"conversation:{first}"]["restarts"] != 1:  # noqa: ASYNC110
            await trio.sleep(0.01)
    after = await actors_by_key(client)
    assert after[f"conversation:{first}"]["last_error"] is not None
    assert after[f"conversation:{second}"]["restarts"] == 0
    assert after["registry"]["restarts"] == 0
    # The restarted actor serves again; the sibling never stopped.
    assert (await send(client, alice, first, "after the kill")).json()["seq"] == 2
    assert (await send(client, bob, second, "sibling")).json()["seq"] == 2


async def test_killing_a_conversation_mid_stream_loses_and_duplicates_nothing(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    owner = await register(client)
    senders = [await register(client) for _ in range(5)]
    conversation_id = await open_group(client, owner, *senders)
    await send(client, owner, conversation_id, "start")
    acked: set[str] = set()
    refused: set[str] = set()

    async def send_stream(account: Account) -> None:
        for n in range(40):
            client_id = f"{account.username}-{n}"
            response = await send(client, account, conversation_id, f"m{n}", client_id=client_id)
            assert response.status_code in (201, 503), response.text
            (acked if response.status_code == 201 else refused).add(client_id)

    async def kill_repeatedly() -> None:
        # Each kill waits for 20 more answers, so all 8 land while the 200 sends are under way.
        for kill in range(1, 9):
            while len(acked) + len(refused) < 20 * kill:  # noqa: ASYNC110 (the senders' progress)
                await trio.sleep(0.01)
            actors = await actors_by_key(client)
            actor = actors.get(f"conversation:{conversation_id}")
            if actor is not None:
                await client.post(f"/debug/actors/{actor['id']}/kill", headers=OPERATOR)

    async with trio.open_nursery() as nursery:
        for account in senders:
            nursery.start_soon(send_stream, account)
        nursery.start_soon(kill_repeatedly)

    rows = await server.context.database.fetch(
        "SELECT client_id, seq FROM messages WHERE conversation_id = $1 AND client_id IS NOT NULL",
        __import__("uuid").UUID(conversation_id),
    )
    stored = [row["client_id"] for row in rows]
    assert len(stored) == len(set(stored)), "a message was stored twice"
    assert set(stored) == acked, "stored messages must be exactly the acknowledged ones"
    seqs = sorted(row["seq"] for row in rows)
    assert seqs == list(range(2, 2 + len(seqs))), "seq must have no gaps"
    actors = await actors_by_key(client)
    restarts = actors[f"conversation:{conversation_id}"]["restarts"]
    # Eight kills within seconds are more than one conversation's restart intensity allows: it
    # may have been given up meanwhile, and the next message started a fresh actor.
    given_up = server.runtime.conversations.given_up
    assert isinstance(restarts, int) and (restarts >= 1 or given_up >= 1)
