"""The message store: gapless per-conversation seq from one batched statement, resends, history."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC

import pytest
import trio

from parley.actors.writer import MessageWriter, WriteBatch, WriteFailed
from parley.config import WriterSettings
from parley.store import Database, pg
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


@pytest.fixture
async def inserter(database: Database) -> AsyncIterator[BatchInserter]:
    async with MessageStore(database).batch_inserter() as inserter:
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
    database_url: str,
) -> None:
    # The writer's connection is its own, so the insert after the cancellation reuses the
    # cancelled one.
    database = Database(database_url, min_size=1, max_size=1, command_timeout=30)
    other = Database(database_url, min_size=1, max_size=1, command_timeout=30)
    watcher = Database(database_url, min_size=1, max_size=1, command_timeout=30)
    await database.connect()
    await other.connect()
    await watcher.connect()
    try:
        _, messages, alice, _, one = await alice_and_bob(database)
        inserter = messages.batch_inserter()
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


# -- the writer's own connection, its backend terminated ------------------------------------


async def writer_backend(database_url: str, *, waiting_on_a_lock: bool) -> int | None:
    """The pid of the writer's backend (if it is waiting on a lock, when asked)."""
    async with await pg.connect(database_url, connect_timeout=10) as admin:
        rows = await admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'parley-writer'"
            " AND datname = current_database() AND ($1::bool IS FALSE OR wait_event_type = 'Lock')",
            [b"t" if waiting_on_a_lock else b"f"],
        )
        return int(rows[0][0] or b"0") if rows else None


async def terminate(database_url: str, pid: int) -> None:
    """Terminate backend `pid` and wait until it has gone (said goodbye to its client)."""
    async with await pg.connect(database_url, connect_timeout=10) as admin:
        await admin.execute("SELECT pg_terminate_backend($1::int)", [str(pid).encode()])
        while True:
            gone = await admin.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1::int)",
                [str(pid).encode()],
            )
            if gone == [(b"t",)]:
                return
            await trio.sleep(0.01)


async def test_a_backend_killed_mid_batch_fails_the_batch_and_the_resend_stores_it_once(
    database: Database, database_url: str
) -> None:
    _, messages, alice, bob, one = await alice_and_bob(database)
    batch = [NewMessage(one, alice, "second", "c2"), NewMessage(one, bob, "third", "c3")]
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            writer: MessageWriter = await nursery.start(
                MessageWriter(messages, WriterSettings()).run
            )
            await writer.write([NewMessage(one, alice, "first", "c1")])
            # The batch waits on the conversation's row lock, mid-statement, when its backend
            # is terminated.
            async with await pg.connect(database_url, connect_timeout=10) as holder:
                await holder.execute("BEGIN")
                await holder.execute(
                    "SELECT 1 FROM conversations WHERE id = $1::uuid FOR UPDATE",
                    [str(one).encode()],
                )
                request = WriteBatch(list(batch))
                await writer.submit(request)
                while True:
                    pid = await writer_backend(database_url, waiting_on_a_lock=True)
                    if pid is not None:
                        break
                    await trio.sleep(0.01)
                await terminate(database_url, pid)
                assert isinstance(await request.outcome(), WriteFailed)
                await holder.execute("ROLLBACK")
            assert [m.body for m in await messages.after(one, after_seq=0, limit=10)] == ["first"]
            # The clients resend (same client_ids): stored once, on a new connection, in order.
            resent = await writer.write(list(batch))
            assert [(w.message.seq, w.duplicate) for w in resent] == [(2, False), (3, False)]
            again = await writer.write(list(batch))
            assert [(w.message.seq, w.duplicate) for w in again] == [(2, True), (3, True)]
            nursery.cancel_scope.cancel()
    stored = await messages.after(one, after_seq=0, limit=10)
    assert [(m.seq, m.body) for m in stored] == [(1, "first"), (2, "second"), (3, "third")]


async def test_a_backend_killed_between_batches_costs_no_batch(
    database: Database, database_url: str
) -> None:
    _, messages, alice, _, one = await alice_and_bob(database)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            writer: MessageWriter = await nursery.start(
                MessageWriter(messages, WriterSettings()).run
            )
            await writer.write([NewMessage(one, alice, "before", None)])
            pid = await writer_backend(database_url, waiting_on_a_lock=False)
            assert pid is not None
            await terminate(database_url, pid)
            # Nothing of this batch reached the closed connection: it goes to a new one.
            (after,) = await writer.write([NewMessage(one, alice, "after", None)])
            assert after.message.seq == 2
            assert await writer_backend(database_url, waiting_on_a_lock=False) not in (None, pid)
            nursery.cancel_scope.cancel()
