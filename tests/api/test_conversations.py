"""Conversations over REST against a running server: the messaging core's guarantees."""

from __future__ import annotations

import uuid

import httpx
import trio

from parley.service import RunningServer
from tests.api.conftest import Account, register


async def open_group(client: httpx.AsyncClient, owner: Account, *members: Account) -> str:
    response = await client.post(
        "/api/conversations",
        json={"member_ids": [m.id for m in members], "title": "group"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["id"]
    return conversation_id


async def send(
    client: httpx.AsyncClient, account: Account, conversation_id: str, body: str, **extra: str
) -> httpx.Response:
    return await client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"body": body, **extra},
        headers=account.headers,
    )


async def test_direct_conversation_is_one_per_pair_under_50_concurrent_creates(
    client: httpx.AsyncClient,
) -> None:
    alice, bob = await register(client), await register(client)
    statuses: list[int] = []
    ids: set[str] = set()

    async def create(me: Account, other: Account) -> None:
        response = await client.post(
            "/api/conversations", json={"member_ids": [other.id]}, headers=me.headers
        )
        statuses.append(response.status_code)
        ids.add(response.json()["id"])

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(create, *((alice, bob) if i % 2 else (bob, alice)))
    assert len(ids) == 1
    assert sorted(statuses) == [200] * 49 + [201]


async def test_seq_has_no_gaps_under_500_concurrent_sends_from_20_senders(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    senders = [await register(client) for _ in range(19)]
    conversation_id = await open_group(client, owner, *senders)
    everyone = [owner, *senders]
    acked: list[tuple[int, str]] = []

    async def send_many(account: Account) -> None:
        for n in range(25):
            response = await send(client, account, conversation_id, f"{account.username} {n}")
            assert response.status_code == 201, response.text
            acked.append((response.json()["seq"], response.json()["body"]))

    async with trio.open_nursery() as nursery:
        for account in everyone:
            nursery.start_soon(send_many, account)
    assert sorted(seq for seq, _ in acked) == list(range(1, 501))
    history: list[dict[str, object]] = []
    before: int | None = None
    while True:
        params = {"limit": 100, **({"before_seq": before} if before else {})}
        page = await client.get(
            f"/api/conversations/{conversation_id}/messages", params=params, headers=owner.headers
        )
        history.extend(page.json()["data"])
        before = page.json()["next_before_seq"]
        if before is None:
            break
    assert sorted((m["seq"], m["body"]) for m in history) == sorted(acked)


async def test_a_resent_client_id_returns_the_original_message(client: httpx.AsyncClient) -> None:
    alice, bob = await register(client), await register(client)
    conversation_id = await open_group(client, alice, bob)
    first = await send(client, alice, conversation_id, "hello", client_id="c-1")
    again = await send(client, alice, conversation_id, "hello (resent)", client_id="c-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    other = await send(client, bob, conversation_id, "same id, other sender", client_id="c-1")
    assert other.status_code == 201 and other.json()["seq"] == 2


async def test_concurrent_resends_of_one_client_id_store_it_once(
    client: httpx.AsyncClient,
) -> None:
    # Ten sends at once (those behind the original wait on its batch), then ten more after its
    # commit (the writer finds the stored original): one row, one answer for all.
    alice, bob = await register(client), await register(client)
    conversation_id = await open_group(client, alice, bob)
    answers: list[httpx.Response] = []

    async def resend(n: int) -> None:
        answers.append(await send(client, alice, conversation_id, f"try {n}", client_id="once"))

    for wave in (range(10), range(10, 20)):
        async with trio.open_nursery() as nursery:
            for n in wave:
                nursery.start_soon(resend, n)

    assert sorted(a.status_code for a in answers) == [200] * 19 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    history = await client.get(
        f"/api/conversations/{conversation_id}/messages", headers=bob.headers
    )
    assert [m["client_id"] for m in history.json()["data"]] == ["once"]


async def test_history_pages_are_stable_while_new_messages_arrive(
    client: httpx.AsyncClient,
) -> None:
    alice, bob = await register(client), await register(client)
    conversation_id = await open_group(client, alice, bob)
    for n in range(40):
        await send(client, alice, conversation_id, f"m{n}")
    url = f"/api/conversations/{conversation_id}/messages"
    first = (await client.get(url, headers=bob.headers)).json()
    assert [m["seq"] for m in first["data"]] == list(range(40, 25, -1))  # the last 15
    for n in range(10):
        await send(client, bob, conversation_id, f"late {n}")
    second = (
        await client.get(url, params={"before_seq": first["next_before_seq"]}, headers=bob.headers)
    ).json()
    assert [m["seq"] for m in second["data"]] == list(range(25, 10, -1))
    catch_up = (await client.get(url, params={"after_seq": 40}, headers=bob.headers)).json()
    assert [m["seq"] for m in catch_up["data"]] == list(range(41, 51))


async def test_unread_counts_follow_read_markers(client: httpx.AsyncClient) -> None:
    alice, bob = await register(client), await register(client)
    conversation_id = await open_group(client, alice, bob)
    for n in range(5):
        await send(client, alice, conversation_id, f"m{n}")

    async def unread(account: Account) -> int:
        page = (await client.get("/api/conversations", headers=account.headers)).json()
        (row,) = [c for c in page["data"] if c["id"] == conversation_id]
        assert row["last_message"]["seq"] == 5
        count: int = row["unread_count"]
        return count

    assert await unread(bob) == 5
    assert await unread(alice) == 0  # your own messages are never unread
    read = await client.post(
        f"/api/conversations/{conversation_id}/read", json={"seq": 3}, headers=bob.headers
    )
    assert read.json() == {"last_read_seq": 3}
    assert await unread(bob) == 2
    backwards = await client.post(
        f"/api/conversations/{conversation_id}/read", json={"seq": 1}, headers=bob.headers
    )
    assert backwards.json() == {"last_read_seq": 3}
    beyond = await client.post(
        f"/api/conversations/{conversation_id}/read", json={"seq": 99}, headers=bob.headers
    )
    assert beyond.json() == {"last_read_seq": 5}
    assert await unread(bob) == 0


async def test_non_members_get_404_and_bad_input_gets_422(client: httpx.AsyncClient) -> None:
    alice, bob, eve = await register(client), await register(client), await register(client)
    conversation_id = await open_group(client, alice, bob)
    for method, path in [
        ("GET", ""),
        ("GET", "/messages"),
        ("POST", "/read"),
        ("POST", "/channel_token"),
    ]:
        response = await client.request(
            method,
            f"/api/conversations/{conversation_id}{path}",
            json={"seq": 1},
            headers=eve.headers,
        )
        assert response.status_code == 404, (method, path)
    assert (await send(client, eve, conversation_id, "let me in")).status_code == 404
    missing = await client.get(f"/api/conversations/{uuid.uuid4()}", headers=alice.headers)
    assert missing.status_code == 404
    too_long = await send(client, alice, conversation_id, "x" * 4001)
    assert too_long.status_code == 422
    assert too_long.json()["error"]["fields"]["body"]
    assert (await send(client, alice, conversation_id, "   ")).status_code == 422
    unicode = await send(client, alice, conversation_id, "héllo 👋 مرحبا \u200d")
    assert unicode.status_code == 201 and unicode.json()["body"] == "héllo 👋 مرحبا \u200d"
    nul = await send(client, alice, conversation_id, "a\x00b")
    assert nul.status_code == 422


async def test_edits_and_tombstones_keep_seq(client: httpx.AsyncClient) -> None:
    alice, bob = await register(client), await register(client)
    conversation_id = await open_group(client, alice, bob)
    await send(client, alice, conversation_id, "first")
    await send(client, alice, conversation_id, "second")
    url = f"/api/conversations/{conversation_id}/messages"
    edited = await client.patch(f"{url}/1", json={"body": "first!"}, headers=alice.headers)
    assert edited.status_code == 200 and edited.json()["edited_at"] is not None
    not_yours = await client.patch(f"{url}/1", json={"body": "mine"}, headers=bob.headers)
    assert not_yours.status_code == 404
    deleted = await client.delete(f"{url}/2", headers=alice.headers)
    assert deleted.json()["deleted_at"] is not None and deleted.json()["body"] == ""
    page = (await client.get(url, headers=alice.headers)).json()["data"]
    assert [(m["seq"], m["body"]) for m in page] == [(2, ""), (1, "first!")]


async def test_members_owner_invites_and_anyone_leaves(client: httpx.AsyncClient) -> None:
    alice, bob, carol = await register(client), await register(client), await register(client)
    conversation_id = await open_group(client, alice, bob)
    url = f"/api/conversations/{conversation_id}/members"
    refused = await client.post(url, json={"user_ids": [carol.id]}, headers=bob.headers)
    assert refused.status_code == 403
    invited = await client.post(url, json={"user_ids": [carol.id]}, headers=alice.headers)
    assert {m["user_id"] for m in invited.json()["members"]} == {alice.id, bob.id, carol.id}
    assert (await send(client, carol, conversation_id, "hi all")).status_code == 201
    assert (await client.delete(f"{url}/{carol.id}", headers=bob.headers)).status_code == 403
    assert (await client.delete(f"{url}/{carol.id}", headers=carol.headers)).status_code == 204
    assert (await send(client, carol, conversation_id, "still here?")).status_code == 404


async def test_channel_token_is_scoped_to_the_conversation(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    alice, bob = await register(client), await register(client)
    conversation_id = await open_group(client, alice, bob)
    response = await client.post(
        f"/api/conversations/{conversation_id}/channel_token", headers=alice.headers
    )
    token = response.json()["token"]
    claims = server.context.tokens.verify_channel(token)
    assert str(claims.conversation_id) == conversation_id and str(claims.user_id) == alice.id
    # It is not an access token.
    assert (
        await client.get("/api/conversations", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 401
