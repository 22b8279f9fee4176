"""Membership changes reach live sockets at once (DESIGN §5, issue 13's privacy leak).

A removed (or leaving) member's channels on `conversation:{id}` get `phx_close` on every socket
they have, channel-token sockets included, and nothing sent after the removal's response reaches
them, neither on that topic nor as `message` on their `user:` topic. An added member sees the
conversation appear on `user:{id}` (`conversation_added`).

"Nothing reached them" is checked without a time window: the sender waits for its ack (the
broadcast is handed to every subscriber's queue before the ack is sent), then the removed
member's socket sends a heartbeat, whose reply is queued behind anything that was delivered to
it. So whatever leaked would be in the inbox before that reply.
"""

from __future__ import annotations

import uuid

import httpx

from tests.phoenix_client import PhoenixClient, open_phoenix_client
from tests.socket.conftest import Realtime, User


def _frames(client: PhoenixClient, event: str, topic: str) -> list[dict[str, object]]:
    return [m.payload for m in client.inbox if m.event == event and m.topic == topic]


async def _remove(realtime: Realtime, by: User, conversation_id: uuid.UUID, user: User) -> None:
    async with httpx.AsyncClient(base_url=realtime.http, timeout=30) as http:
        response = await http.delete(
            f"/api/conversations/{conversation_id}/members/{user.id}",
            headers={"authorization": f"Bearer {by.token}"},
        )
    assert response.status_code == 204, response.text


async def test_a_removed_member_is_closed_on_every_socket_and_hears_nothing_after(
    realtime: Realtime,
) -> None:
    alice, bob, dave = await realtime.users(3)
    cid = await realtime.group(alice, bob, dave)
    topic, dave_user_topic = f"conversation:{cid}", f"user:{dave.id}"
    async with (
        open_phoenix_client(realtime.url, token=bob.token) as cb,
        open_phoenix_client(realtime.url, token=dave.token) as phone,
        open_phoenix_client(realtime.url, token=dave.token) as laptop,
        open_phoenix_client(realtime.url, token=realtime.channel_token(dave, cid)) as widget,
    ):
        await cb.join(topic)
        for client in (phone, laptop, widget):
            assert (await client.join(topic)).ok
        assert (await phone.join(dave_user_topic)).ok
        assert (await cb.push(topic, "new_msg", {"body": "before"})).ok
        for client in (phone, laptop, widget):
            await client.receive("new_msg", topic)

        await _remove(realtime, alice, cid, dave)

        for client in (phone, laptop, widget):
            await client.heartbeat()
            closes = _frames(client, "phx_close", topic)
            assert closes == [{}], client.inbox
        (removed,) = _frames(phone, "conversation_removed", dave_user_topic)
        assert removed == {"conversation_id": str(cid)}
        seen = await cb.receive("member_removed", topic)
        assert seen.payload == {"conversation_id": str(cid), "user_id": str(dave.id)}

        secret = await cb.push(topic, "new_msg", {"body": "secret after dave removed"})
        assert secret.ok
        for client in (phone, laptop, widget):
            await client.heartbeat()
            leaked = [m for m in client.inbox if "secret" in repr(m.payload)]
            assert leaked == [], leaked
        # A removed member cannot rejoin, over either kind of token.
        for client in (laptop, widget):
            rejoin = await client.join(topic)
            assert rejoin.response == {"reason": "unauthorized"}


async def test_leaving_closes_ones_own_channels(realtime: Realtime) -> None:
    alice, dave = await realtime.users(2)
    cid = await realtime.group(alice, dave)
    topic = f"conversation:{cid}"
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as ca,
        open_phoenix_client(realtime.url, token=dave.token) as cd,
    ):
        await ca.join(topic)
        await cd.join(topic)
        await _remove(realtime, dave, cid, dave)
        await cd.heartbeat()
        assert _frames(cd, "phx_close", topic) == [{}]
        assert (await ca.push(topic, "new_msg", {"body": "after dave left"})).ok
        await cd.heartbeat()
        assert [m for m in cd.inbox if m.event == "new_msg"] == []
        # The others stay joined and see the leave.
        assert (await ca.receive("member_removed", topic)).payload["user_id"] == str(dave.id)
        await ca.receive("new_msg", topic)


async def test_a_removed_members_user_topic_stops_getting_the_conversations_messages(
    realtime: Realtime,
) -> None:
    alice, dave = await realtime.users(2)
    cid = await realtime.group(alice, dave)
    topic, dave_user_topic = f"conversation:{cid}", f"user:{dave.id}"
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as ca,
        open_phoenix_client(realtime.url, token=dave.token) as cd,
    ):
        await ca.join(topic)
        await cd.join(dave_user_topic)  # not the conversation's topic: `message` comes here
        assert (await ca.push(topic, "new_msg", {"body": "hello dave"})).ok
        assert (await cd.receive("message", dave_user_topic)).payload["body"] == "hello dave"
        await _remove(realtime, alice, cid, dave)
        assert (await ca.push(topic, "new_msg", {"body": "secret after dave removed"})).ok
        await cd.heartbeat()
        assert [m for m in cd.inbox if m.event == "message"] == []


async def test_an_added_member_sees_the_conversation_appear(realtime: Realtime) -> None:
    alice, bob, carol = await realtime.users(3)
    cid = await realtime.group(alice, bob)
    topic = f"conversation:{cid}"
    async with (
        open_phoenix_client(realtime.url, token=bob.token) as cb,
        open_phoenix_client(realtime.url, token=carol.token) as cc,
        httpx.AsyncClient(base_url=realtime.http, timeout=30) as http,
    ):
        await cb.join(topic)
        await cc.join(f"user:{carol.id}")
        response = await http.post(
            f"/api/conversations/{cid}/members",
            json={"user_ids": [str(carol.id), str(bob.id)]},  # bob is a member already
            headers={"authorization": f"Bearer {alice.token}"},
        )
        assert response.status_code == 200, response.text
        added = await cc.receive("conversation_added", f"user:{carol.id}")
        conversation = added.payload["conversation"]
        assert conversation["id"] == str(cid)
        assert str(carol.id) in {m["user_id"] for m in conversation["members"]}
        seen = await cb.receive("member_added", topic)
        assert seen.payload == {"conversation_id": str(cid), "user_id": str(carol.id)}
        await cb.heartbeat()
        assert _frames(cb, "member_added", topic) == []  # bob was not added again
        assert (await cc.join(topic)).ok
        assert (await cb.push(topic, "new_msg", {"body": "welcome carol"})).ok
        assert (await cc.receive("new_msg", topic)).payload["body"] == "welcome carol"


async def test_a_new_group_appears_on_every_members_user_topic(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as alices_phone,
        open_phoenix_client(realtime.url, token=bob.token) as cb,
        httpx.AsyncClient(base_url=realtime.http, timeout=30) as http,
    ):
        await alices_phone.join(f"user:{alice.id}")
        await cb.join(f"user:{bob.id}")
        response = await http.post(
            "/api/conversations",
            json={"member_ids": [str(bob.id)], "title": "plans"},
            headers={"authorization": f"Bearer {alice.token}"},
        )
        assert response.status_code == 201, response.text
        cid = response.json()["id"]
        for client, user in ((alices_phone, alice), (cb, bob)):
            added = await client.receive("conversation_added", f"user:{user.id}")
            assert added.payload["conversation"]["id"] == cid
