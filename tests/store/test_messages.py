"""The message store: gapless per-conversation seq from one batched statement, resends, history."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC

import pytest
import trio

from parley.config import WriterDriver
from parley.store import Database
from parley.store.conversations import ConversationStore
from parley.store.database import Connection
from parley.store.messages import BatchInserter, MessageStore, NewMessage, RejectedMessages, Written
from parley.store.users import UserStore


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=4, command_timeout=30)
    await database.connect()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture(params=["trio", "asyncpg"])
def driver(request: pytest.FixtureRequest) -> WriterDriver:
    """The writer's two ways to PostgreSQL run the same statement; both are tested."""
    value: WriterDriver = request.param
    return value


@pytest.fixture
async def inserter(database: Database, driver: WriterDriver) -> AsyncIterator[BatchInserter]:
    async with MessageStore(database).batch_inserter(driver=driver) as inserter:
        yield inserter


async def insert(inserter: BatchInserter, batch: list[NewMessage]) -> list[Written]:
    return await (await inserter.start(batch)).result()


async def make_user(users: UserStore, name: str) -> uuid.UUID:
    user = await users.create(email=f"{name}@example.com", username=name, password_hash="x")
    return user.id


async def alice_and_bob(
    database: Database,
) -> tuple[ConversationStore, MessageStore, uuid.UUID, uuid.UUID, uuid.UUID]:
    """The stores, two users, and the id of their direct conversation."""
    users, conversations = UserStore(database), ConversationStore(database)
    alice, bob = await make_user(users, "alice"), await make_user(users, "bob")
    direct, _ = await conversations.open_direct(alice, bob)
    return conversations, MessageStore(database), alice, bob, direct.id


async def test_batch_numbers_each_conversation_without_gaps_and_skips_resends(
    database: Database,
    inserter: BatchInserter,
) -> None:
    conversations, messages, alice, bob, one = await alice_and_bob(database)
    two = await conversations.create_group(alice, "group", [bob])
    batch = [
        NewMessage(one, alice, "a1", "c1"),
        NewMessage(two.id, bob, "b1", None),
        NewMessage(one, bob, "a2", None),
        NewMessage(one, alice, "a1 again", "c1"),  # repeated within the batch
        NewMessage(two.id, alice, "b2", "c1"),  # same client_id, other conversation: new
    ]
    written = await insert(inserter, batch)
    assert [(w.message.seq, w.duplicate) for w in written] == [
        (1, False),
        (1, False),
        (2, False),
        (1, True),
        (2, False),
    ]
    assert written[3].message.body == "a1"
    # What the statement answers is what the table holds (UTC timestamps included).
    for row in written:
        assert row.message == await messages.get(row.message.conversation_id, row.message.seq)
        assert row.message.inserted_at.tzinfo == UTC
    again = await insert(inserter, [NewMessage(one, alice, "resend", "c1")])
    assert again[0].duplicate and again[0].message.id == written[0].message.id
    more = await insert(inserter, [NewMessage(one, alice, "a3", None)])
    assert more[0].message.seq == 3
    refreshed = await conversations.get(one)
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


async def test_a_batch_of_resends_only_returns_the_originals_and_moves_nothing(
    database: Database,
    inserter: BatchInserter,
) -> None:
    conversations, _, alice, bob, one = await alice_and_bob(database)
    first = await insert(
        inserter, [NewMessage(one, alice, "a1", "c1"), NewMessage(one, bob, "b1", "c1")]
    )
    again = await insert(
        inserter,
        [
            NewMessage(one, bob, "b1 resent", "c1"),
            NewMessage(one, alice, "a1 resent", "c1"),
            NewMessage(one, bob, "b1 resent twice", "c1"),
        ],
    )
    assert [(w.message.id, w.duplicate) for w in again] == [
        (first[1].message.id, True),
        (first[0].message.id, True),
        (first[1].message.id, True),
    ]
    refreshed = await conversations.get(one)
    assert refreshed is not None and refreshed.last_seq == 2


async def test_a_refused_value_fails_the_whole_batch_and_writes_nothing(
    database: Database,
    inserter: BatchInserter,
) -> None:
    _, messages, alice, _, one = await alice_and_bob(database)
    with pytest.raises(RejectedMessages):
        await insert(
            inserter,
            [NewMessage(one, alice, "fine", "c1"), NewMessage(one, alice, "nul \x00", None)],
        )
    assert await messages.after(one, after_seq=0, limit=10) == []
    written = await insert(inserter, [NewMessage(one, alice, "fine", "c1")])
    assert (written[0].message.seq, written[0].duplicate) == (1, False)


async def test_the_database_refuses_a_client_id_or_body_the_message_rules_refuse(
    database: Database,
    inserter: BatchInserter,
) -> None:
    # The CHECK constraints behind `parley.actors.message_rules` (migration 0005): a path that
    # skipped the rules still cannot store what they refuse.
    _, messages, alice, _, one = await alice_and_bob(database)
    for refused in (NewMessage(one, alice, "fine", "c" * 65), NewMessage(one, alice, "", None)):
        with pytest.raises(RejectedMessages):
            await insert(inserter, [refused])
    assert await messages.after(one, after_seq=0, limit=10) == []
    written = await insert(inserter, [NewMessage(one, alice, "fine", "c" * 64)])
    assert written[0].message.seq == 1


# This test's database as the server sees it (each test has a database of its own).
BACKEND_HOLDS_THE_ROW = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND state = 'idle in transaction' AND query LIKE '%FOR UPDATE'"
)
BACKEND_WAITS_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND wait_event_type = 'Lock'"
)


async def test_a_cancelled_batch_writes_nothing_and_leaves_its_connection_usable(
    database_url: str, driver: WriterDriver
) -> None:
    # One pooled connection (and the "trio" driver has one of its own), so the insert after the
    # cancellation reuses the cancelled one.
    database = Database(database_url, min_size=1, max_size=1, command_timeout=30)
    other = Database(database_url, min_size=1, max_size=1, command_timeout=30)
    watcher = Database(database_url, min_size=1, max_size=1, command_timeout=30)
    await database.connect()
    await other.connect()
    await watcher.connect()
    try:
        _, messages, alice, _, one = await alice_and_bob(database)
        inserter = messages.batch_inserter(driver=driver)
        release = asyncio.Event()  # set on `other`'s event loop, where the holder waits

        async def hold_the_conversation(conn: Connection) -> None:
            await conn.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", one)
            await release.wait()

        async def let_go(pool: object) -> None:
            release.set()

        async def until(query: str) -> None:
            while not await watcher.fetchval(query):  # noqa: ASYNC110 (the server's view)
                await trio.sleep(0.01)

        async def give_up_once_it_waits(scope: trio.CancelScope) -> None:
            await until(BACKEND_WAITS_ON_A_LOCK)
            scope.cancel()

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(other.transaction, hold_the_conversation)
                try:
                    await until(BACKEND_HOLDS_THE_ROW)
                    # The batch waits on the row lock until the caller gives up.
                    with trio.CancelScope() as waited:
                        nursery.start_soon(give_up_once_it_waits, waited)
                        await insert(inserter, [NewMessage(one, alice, "cancelled", "c1")])
                    assert waited.cancelled_caught
                finally:
                    await other.run(let_go)
        written = await insert(inserter, [NewMessage(one, alice, "next", "c1")])
        assert (written[0].message.seq, written[0].message.body) == (1, "next")
        assert not written[0].duplicate
    finally:
        await inserter.aclose()
        await watcher.close()
        await other.close()
        await database.close()
