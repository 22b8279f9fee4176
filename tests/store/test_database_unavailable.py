"""Which failures mean "the database cannot answer now" (the API's 503), and the bounded wait for
a pooled connection when every one is busy."""

from __future__ import annotations

import asyncpg
import pytest
import trio

from parley.store import Database, StoreUnavailable, database_unavailable
from parley.store.pg import PgBroken, PgError


def test_outages_restarts_saturation_and_timeouts_are_unavailable() -> None:
    for error in (
        StoreUnavailable("not connected"),
        FileNotFoundError(2, "No such file or directory"),  # the socket of a stopped server
        ConnectionRefusedError(),
        TimeoutError(),  # a statement past command_timeout, a pool past its acquire wait
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        PgBroken("could not connect"),
        PgError("57P01", "terminating connection"),
        ExceptionGroup("both", [TimeoutError(), ConnectionResetError()]),
    ):
        assert database_unavailable(error), error


def test_refused_statements_and_bugs_are_not() -> None:
    for error in (
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.InvalidTextRepresentationError("invalid input syntax"),
        asyncpg.UndefinedTableError("relation does not exist"),
        PgError("23505", "duplicate key"),
        ValueError("a bug"),
        ExceptionGroup("mixed", [TimeoutError(), KeyError("a bug")]),
    ):
        assert not database_unavailable(error), error


async def test_a_query_waits_for_a_busy_pool_only_as_long_as_its_acquire_timeout(
    database_url: str,
) -> None:
    database = Database(
        database_url, min_size=1, max_size=1, command_timeout=900, acquire_timeout=0.2
    )
    watcher = Database(database_url, min_size=1, max_size=1, command_timeout=30)
    await database.connect()
    await watcher.connect()
    sleeping = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event = 'PgSleep'"
    )
    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(database.execute, "SELECT pg_sleep(600)")
                while await watcher.fetchval(sleeping) == 0:  # noqa: ASYNC110 (the server's view)
                    await trio.sleep(0.01)
                # The pool's one connection sleeps: the next query gives up instead of queueing.
                with pytest.raises(TimeoutError) as waited:
                    await database.fetchval("SELECT 1")
                assert database_unavailable(waited.value)
                nursery.cancel_scope.cancel()
            assert await database.fetchval("SELECT 41 + 1") == 42
    finally:
        await watcher.close()
        await database.close()
