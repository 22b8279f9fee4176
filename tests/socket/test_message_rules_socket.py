"""A new message obeys one rule over REST and over every socket event that writes one.

The user-visible defect this pins down: the socket allowed 100-character client ids and NUL
bodies where REST refused them (an 80-character client_id was stored; a NUL body answered
`{"reason": "unavailable"}`, an outage reported for a client's mistake).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from parley.actors.message_rules import CLIENT_ID_MAX_CHARS
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime

NUL_BODY = "nul \x00 inside"
LONG_CLIENT_ID = "c" * 80


async def _stored_bodies(realtime: Realtime, cid: uuid.UUID) -> list[str]:
    rows = await realtime.context.stores.messages.after(cid, after_seq=0, limit=100)
    return [row.body for row in rows]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"body": NUL_BODY}, "body"),
        ({"body": "fine", "client_id": LONG_CLIENT_ID}, "client_id"),
        ({"body": "fine", "client_id": "nul\x00"}, "client_id"),
        ({"body": " "}, "body"),
    ],
)
async def test_the_same_bad_message_is_refused_by_rest_and_the_socket_and_nothing_is_stored(
    realtime: Realtime, payload: dict[str, Any], field: str
) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic = f"conversation:{cid}"
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as ca,
        httpx.AsyncClient(base_url=realtime.http, timeout=30) as http,
    ):
        await ca.join(topic)
        reply = await ca.push(topic, "new_msg", payload)
        assert reply.status == "error"
        assert reply.response["reason"] == "invalid"
        assert list(reply.response["errors"]) == [field]
        response = await http.post(
            f"/api/conversations/{cid}/messages",
            json=payload,
            headers={"authorization": f"Bearer {alice.token}"},
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        # One rule: the same field, with the same words, on both paths.
        assert error["fields"] == reply.response["errors"]
    assert await _stored_bodies(realtime, cid) == []


async def test_private_chat_and_room_chat_apply_the_rule_to_their_message_field(
    realtime: Realtime,
) -> None:
    alice, bob = await realtime.users(2)
    async with open_phoenix_client(realtime.url, token=alice.token) as ca:
        await ca.join(f"private_chat:{alice.id}")
        await ca.join("room:chat")
        for topic, event, base in (
            (f"private_chat:{alice.id}", "send", {"to": str(bob.id)}),
            ("room:chat", "send_msg", {"user": str(bob.id), "conv": None}),
        ):
            nul = await ca.push(topic, event, {**base, "message": NUL_BODY})
            assert nul.response["reason"] == "invalid"
            assert list(nul.response["errors"]) == ["message"], nul.response
            long_id = await ca.push(
                topic, event, {**base, "message": "hi", "client_id": LONG_CLIENT_ID}
            )
            assert list(long_id.response["errors"]) == ["client_id"], long_id.response
    direct, _ = await realtime.context.stores.conversations.open_direct(alice.id, bob.id)
    assert await _stored_bodies(realtime, direct.id) == []


async def test_a_client_id_at_the_bound_is_stored_over_the_socket(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic = f"conversation:{cid}"
    key = "k" * CLIENT_ID_MAX_CHARS
    async with open_phoenix_client(realtime.url, token=alice.token) as ca:
        await ca.join(topic)
        assert (await ca.push(topic, "new_msg", {"body": "at the bound", "client_id": key})).ok
    rows = await realtime.context.stores.messages.after(cid, after_seq=0, limit=10)
    assert [(row.body, row.client_id) for row in rows] == [("at the bound", key)]
