"""The asyncio bridge and the Database handle, against a real PostgreSQL on the real clock."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import trio

from parley.store import Database, StoreUnavailable
from parley.store.bridge import AsyncioBridge, BridgeClosed
from parley.store.database import Connection


async def test_bridge_returns_results_and_propagates_errors() -> None:
    bridge = AsyncioBridge()
    bridge.start()
    try:

        async def add(a: int, b: int) -> int:
            await asyncio.sleep(0)
            return a + b

        async def boom() -> None:
            raise ValueError("from asyncio")

        assert await bridge.run(add, 2, 3) == 5
        with pytest.raises(ValueError, match="from asyncio"):
            await bridge.run(boom)
    finally:
        await bridge.stop()
    with pytest.raises(BridgeClosed):
        await bridge.run(asyncio.sleep, 0)


async def test_many_concurrent_calls_each_get_their_own_result() -> None:
    # Wake-ups are coalesced in both directions (a deque drained per wake-up): a lost wake-up
    # would hang here, a mixed-up result would fail the comparison.
    bridge = AsyncioBridge()
    bridge.start()
    results: dict[int, int] = {}
    try:

        async def square_later(n: int) -> int:
            await asyncio.sleep((n % 7) / 1000)
            return n * n

        async def caller(n: int) -> None:
            results[n] = await bridge.run(square_later, n)

        with trio.fail_after(60):
            for _ in range(5):
                async with trio.open_nursery() as nursery:
                    for n in range(300):
                        nursery.start_soon(caller, n)
                assert results == {n: n * n for n in range(300)}
                results.clear()
    finally:
        await bridge.stop()


async def test_cancelling_the_trio_caller_cancels_the_asyncio_task() -> None:
    bridge = AsyncioBridge()
    bridge.start()
    outcome: list[str] = []
    started = trio.Event()
    trio_token = trio.lowlevel.current_trio_token()
    try:

        async def slow() -> None:
            trio.from_thread.run_sync(started.set, trio_token=trio_token)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                outcome.append("asyncio side cancelled")
                raise

        async def cancel_once_started(scope: trio.CancelScope) -> None:
            await started.wait()
            scope.cancel()

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                with trio.CancelScope() as call:
                    nursery.start_soon(cancel_once_started, call)
                    await bridge.run(slow)
        # The bridge waited for the asyncio task to finish before letting trio move on.
        assert outcome == ["asyncio side cancelled"]
    finally:
        await bridge.stop()


async def test_cancelled_query_returns_a_healthy_connection_to_the_pool(database_url: str) -> None:
    database = Database(database_url, min_size=1, max_size=1, command_timeout=900)
    watcher = Database(database_url, min_size=1, max_size=1, command_timeout=30)
    await database.connect()
    await watcher.connect()
    sleeping = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event = 'PgSleep'"
    )
    try:
        with trio.fail_after(60):  # left to run, the statement would take ten minutes

            async def cancel_once_it_sleeps(scope: trio.CancelScope) -> None:
                while await watcher.fetchval(sleeping) == 0:  # noqa: ASYNC110 (the server's view)
                    await trio.sleep(0.01)
                scope.cancel()

            async with trio.open_nursery() as nursery:
                with trio.CancelScope() as query:
                    nursery.start_soon(cancel_once_it_sleeps, query)
                    await database.execute("SELECT pg_sleep(600)")
            assert query.cancelled_caught
            # The pool's only connection is usable at once: the server-side query was cancelled.
            assert await database.fetchval("SELECT 41 + 1") == 42
        assert await watcher.fetchval(sleeping) == 0
    finally:
        await watcher.close()
        await database.close()


async def test_transaction_rolls_back_when_the_function_raises(database_url: str) -> None:
    database = Database(database_url, min_size=1, max_size=2, command_timeout=30)
    await database.connect()
    try:
        await database.execute("CREATE TABLE t (v int)")

        async def insert_then_fail(conn: Connection) -> None:
            await conn.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            await database.transaction(insert_then_fail)
        assert await database.fetchval("SELECT count(*) FROM t") == 0
    finally:
        await database.close()
    with pytest.raises(StoreUnavailable):
        await database.fetchval("SELECT 1")


async def test_releasing_a_pooled_connection_sends_nothing_to_the_server(
    database_url: str,
) -> None:
    # asyncpg's default reset would send `... UNLISTEN *; RESET ALL` on every release: one more
    # round trip for every pooled query. Parley's pool only rolls back an open transaction.
    database = Database(database_url, min_size=1, max_size=1, command_timeout=30)
    await database.connect()
    queries: list[str] = []
    try:

        async def log_queries(pool: asyncpg.Pool) -> None:
            async with pool.acquire() as conn:
                conn.add_query_logger(lambda record: queries.append(record.query))

        await database.run(log_queries)
        assert await database.fetchval("SELECT 41 + 1") == 42
        await database.execute("SELECT 1")
        # Query loggers run as loop callbacks: one more trip through the loop to collect them.
        await database.run(lambda pool: asyncio.sleep(0))
        assert queries == ["SELECT 41 + 1", "SELECT 1"]
    finally:
        await database.close()


async def test_a_connection_released_inside_a_transaction_is_rolled_back(
    database_url: str,
) -> None:
    database = Database(database_url, min_size=1, max_size=1, command_timeout=30)
    await database.connect()
    try:
        await database.execute("CREATE TABLE t (v int)")

        async def leave_a_transaction_open(pool: asyncpg.Pool) -> None:
            async with pool.acquire() as conn:
                await conn.execute("BEGIN")
                await conn.execute("INSERT INTO t VALUES (1)")

        async def in_transaction(pool: asyncpg.Pool) -> bool:
            async with pool.acquire() as conn:
                return conn.is_in_transaction()

        await database.run(leave_a_transaction_open)
        # The pool's only connection: its next user is outside any transaction (as the server
        # reports it) and sees no row, where its own uncommitted insert would show.
        assert await database.run(in_transaction) is False
        assert await database.fetchval("SELECT count(*) FROM t") == 0
    finally:
        await database.close()
