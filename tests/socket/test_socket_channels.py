"""The application channels of DESIGN §5 over real sockets: conversation (ack after commit,
client_id de-dup, read markers, recovery), private_chat, room:chat, system:general announcements."""

from __future__ import annotations

import httpx

from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime


async def test_new_msg_ack_dedup_and_validation(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic = f"conversation:{cid}"
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as ca,
        open_phoenix_client(realtime.url, token=bob.token) as cb,
    ):
        await ca.join(topic)
        await cb.join(topic)
        ack = await ca.push(topic, "new_msg", {"body": "hello", "client_id": "c-1"})
        assert ack.ok and ack.response["seq"] == 1
        again = await ca.push(topic, "new_msg", {"body": "hello", "client_id": "c-1"})
        assert again.response == ack.response
        seen = await cb.receive("new_msg", topic)
        assert seen.payload["client_id"] == "c-1"
        await cb.expect_nothing("new_msg", topic)  # the resend is not broadcast again
        for bad in ({}, {"body": "   "}, {"body": "x" * 5000}, {"body": "ok", "client_id": 7}):
            reply = await ca.push(topic, "new_msg", bad)
            assert reply.status == "error" and reply.response["reason"] == "invalid", bad
        unknown = await ca.push(topic, "no_such_event", {})
        assert unknown.response == {"reason": "unknown event"}
        # debug_crash is for admins only
        assert (await ca.push(topic, "debug_crash", {})).response == {"reason": "unknown event"}


async def test_read_marker_is_stored_and_broadcast(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic = f"conversation:{cid}"
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as ca,
        open_phoenix_client(realtime.url, token=bob.token) as cb,
    ):
        await ca.join(topic)
        await cb.join(topic)
        for n in range(3):
            await ca.push(topic, "new_msg", {"body": f"m{n}"})
        reply = await cb.push(topic, "read", {"seq": 2})
        assert reply.response == {"seq": 2}
        read = await ca.receive("read", topic)
        assert read.payload == {"user_id": str(bob.id), "seq": 2}
        assert (await cb.push(topic, "read", {"seq": "x"})).status == "error"
    members = await realtime.context.stores.conversations.members(cid)
    assert {m.user_id: m.last_read_seq for m in members}[bob.id] == 2


async def test_join_with_last_seq_recovers_or_points_to_history(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic = f"conversation:{cid}"
    limit = realtime.context.settings.messages.recovery_max_messages
    async with open_phoenix_client(realtime.url, token=alice.token) as ca:
        await ca.join(topic)
        for n in range(5):
            await ca.push(topic, "new_msg", {"body": f"m{n}"})
    async with open_phoenix_client(realtime.url, token=bob.token) as cb:
        reply = await cb.join(topic, {"last_seq": 2})
        assert reply.response["recovered"] is True
        assert [m["seq"] for m in reply.response["messages"]] == [3, 4, 5]
        assert [m["body"] for m in reply.response["messages"]] == ["m2", "m3", "m4"]
        await cb.expect_nothing("new_msg", topic)
        bad = await cb.join(topic, {"last_seq": -1})
        assert bad.status == "error"
    for n in range(limit):
        await realtime.runtime.chat.send(cid, alice.id, f"bulk {n}", None)
    async with open_phoenix_client(realtime.url, token=bob.token) as cb:
        reply = await cb.join(topic, {"last_seq": 0})
        assert reply.response == {
            "recovered": False,
            "history": f"/api/conversations/{cid}/messages?after_seq=0",
        }


async def test_private_chat_send(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as ca,
        open_phoenix_client(realtime.url, token=bob.token, vsn=None) as cb,
    ):
        assert (await ca.join(f"private_chat:{alice.id}")).ok
        assert (await cb.join(f"private_chat:{bob.id}")).ok
        ack = await ca.push(
            f"private_chat:{alice.id}", "send", {"to": str(bob.id), "message": "psst"}
        )
        assert ack.ok
        got = await cb.receive("send", f"private_chat:{bob.id}")
        assert got.payload["message"] == "psst"
        assert (got.payload["from"], got.payload["to"]) == (str(alice.id), str(bob.id))
        assert got.payload["id"] == ack.response["id"]
        assert got.payload["inserted_at"].endswith("Z")
        direct, _ = await realtime.context.stores.conversations.open_direct(alice.id, bob.id)
        assert ack.response["conversation_id"] == str(direct.id)
        unknown = await ca.push(
            f"private_chat:{alice.id}",
            "send",
            {"to": "00000000-0000-4000-8000-000000000000", "message": "hi"},
        )
        assert unknown.response == {"reason": "unknown user"}


async def test_room_chat_send_msg_reaches_only_the_recipient(realtime: Realtime) -> None:
    alice, bob, carol = await realtime.users(3)
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as ca,
        open_phoenix_client(realtime.url, token=bob.token) as cb,
        open_phoenix_client(realtime.url, token=carol.token) as cc,
    ):
        for client in (ca, cb, cc):
            assert (await client.join("room:chat")).ok
        ack = await ca.push(
            "room:chat", "send_msg", {"user": str(bob.id), "conv": None, "message": "hey bob"}
        )
        assert ack.ok
        got = await cb.receive("receive_msg", "room:chat")
        assert got.join_ref == cb.join_refs["room:chat"]
        message = got.payload["message"]
        assert message["content"] == "hey bob"
        assert message["sender_id"] == str(alice.id)
        assert message["id"] == ack.response["id"]
        await cc.expect_nothing("receive_msg")
        await ca.expect_nothing("receive_msg")
        # an explicit conversation the recipient is not in is refused
        group = await realtime.group(alice, carol)
        refused = await ca.push(
            "room:chat", "send_msg", {"user": str(bob.id), "conv": str(group), "message": "no"}
        )
        assert refused.response == {"reason": "unauthorized"}


async def test_announcements_reach_system_general_with_presence(realtime: Realtime) -> None:
    admin = await realtime.user("admin")
    alice, bob = await realtime.users(2)
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as ca,
        open_phoenix_client(realtime.url, token=bob.token, vsn=None) as cb,
    ):
        assert (await ca.join("system:general")).ok
        await ca.receive("presence_state", "system:general")
        assert (await cb.join("system:general")).ok
        state = await cb.receive("presence_state", "system:general")
        assert set(state.payload) == {alice.key, bob.key}
        async with httpx.AsyncClient(base_url=realtime.http) as http:
            refused = await http.post(
                "/api/admin/announcements",
                json={"message": "nope"},
                headers={"Authorization": f"Bearer {alice.token}"},
            )
            assert refused.status_code == 403
            invalid = await http.post(
                "/api/admin/announcements",
                json={"message": " "},
                headers={"Authorization": f"Bearer {admin.token}"},
            )
            assert invalid.status_code == 422
            response = await http.post(
                "/api/admin/announcements",
                json={"message": "maintenance at noon"},
                headers={"Authorization": f"Bearer {admin.token}"},
            )
            assert response.status_code == 200
            assert response.json()["recipients"] == 2
        for client in (ca, cb):
            got = await client.receive("announcement", "system:general")
            assert got.payload["message"] == "maintenance at noon"
            assert got.payload["from"] == str(admin.id)
