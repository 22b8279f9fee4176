"""The message store: gapless per-conversation seq from one batched statement, resends, history."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import trio

from parley.store import Database
from parley.store.conversations import ConversationStore
from parley.store.messages import MessageStore, NewMessage
from parley.store.users import UserStore


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=4, command_timeout=30)
    await database.connect()
    try:
        yield database
    finally:
        await database.close()


async def make_user(users: UserStore, name: str) -> uuid.UUID:
    user = await users.create(email=f"{name}@example.com", username=name, password_hash="x")
    return user.id


async def test_batch_numbers_each_conversation_without_gaps_and_skips_resends(
    database: Database,
) -> None:
    users, conversations, messages = (
        UserStore(database),
        ConversationStore(database),
        MessageStore(database),
    )
    alice, bob = await make_user(users, "alice"), await make_user(users, "bob")
    one, _ = await conversations.open_direct(alice, bob)
    two = await conversations.create_group(alice, "group", [bob])
    batch = [
        NewMessage(one.id, alice, "a1", "c1"),
        NewMessage(two.id, bob, "b1", None),
        NewMessage(one.id, bob, "a2", None),
        NewMessage(one.id, alice, "a1 again", "c1"),  # repeated within the batch
        NewMessage(two.id, alice, "b2", "c1"),  # same client_id, other conversation: new
    ]
    written = await messages.insert_batch(batch)
    assert [(w.message.seq, w.duplicate) for w in written] == [
        (1, False),
        (1, False),
        (2, False),
        (1, True),
        (2, False),
    ]
    assert written[3].message.body == "a1"
    again = await messages.insert_batch([NewMessage(one.id, alice, "resend", "c1")])
    assert again[0].duplicate and again[0].message.id == written[0].message.id
    more = await messages.insert_batch([NewMessage(one.id, alice, "a3", None)])
    assert more[0].message.seq == 3
    refreshed = await conversations.get(one.id)
    assert refreshed is not None and refreshed.last_seq == 3


async def test_direct_pair_is_unique_under_concurrent_creates(database: Database) -> None:
    users, conversations = UserStore(database), ConversationStore(database)
    alice, bob = await make_user(users, "alice"), await make_user(users, "bob")
    results: list[tuple[uuid.UUID, bool]] = []

    async def open_one(first: uuid.UUID, second: uuid.UUID) -> None:
        conversation, created = await conversations.open_direct(first, second)
        results.append((conversation.id, created))

    async with trio.open_nursery() as nursery:
        for i in range(50):
            pair = (alice, bob) if i % 2 else (bob, alice)
            nursery.start_soon(open_one, *pair)
    assert len({conversation_id for conversation_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    members = await conversations.members(results[0][0])
    assert sorted(m.user_id for m in members) == sorted([alice, bob])
