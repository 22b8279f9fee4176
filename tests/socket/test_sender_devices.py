"""Every device of a user shows a conversation as it is: a sender's other sockets get what it sent
on `private_chat` and `room:chat` (Phoenix apps broadcast to the sender's own topic too), while
the sending socket has its reply and no echo (checked behind a heartbeat, which is queued after
anything delivered to that socket)."""

from __future__ import annotations

from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime


async def test_a_private_chat_senders_other_devices_see_what_they_sent(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    mine = f"private_chat:{alice.id}"
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as phone,
        open_phoenix_client(realtime.url, token=alice.token) as laptop,
        open_phoenix_client(realtime.url, token=bob.token) as cb,
    ):
        await phone.join(mine)
        await laptop.join(mine)
        await cb.join(f"private_chat:{bob.id}")
        for n in range(2):  # the first send looks the pair's conversation up, the second not
            reply = await phone.push(mine, "send", {"to": str(bob.id), "message": f"hi {n}"})
            assert reply.ok
            echoed = await laptop.receive("send", mine)
            received = await cb.receive("send", f"private_chat:{bob.id}")
            assert echoed.payload == received.payload
            assert echoed.payload["from"] == str(alice.id) and echoed.payload["to"] == str(bob.id)
            assert echoed.payload["id"] == reply.response["id"]
        await phone.heartbeat()
        assert [m for m in phone.inbox if m.event == "send"] == []  # the sender has its reply


async def test_a_room_chat_senders_other_devices_see_what_they_sent(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as phone,
        open_phoenix_client(realtime.url, token=alice.token) as laptop,
        open_phoenix_client(realtime.url, token=bob.token) as cb,
    ):
        for client in (phone, laptop, cb):
            await client.join("room:chat")
        payload = {"user": str(bob.id), "conv": None, "message": "lunch?"}
        reply = await phone.push("room:chat", "send_msg", payload)
        assert reply.ok
        echoed = await laptop.receive("receive_msg", "room:chat")
        received = await cb.receive("receive_msg", "room:chat")
        assert echoed.payload == received.payload == {"message": reply.response}
        await phone.heartbeat()
        assert [m for m in phone.inbox if m.event == "receive_msg"] == []
