"""The database handle every store module uses: an asyncpg pool living behind the asyncio bridge.

Trio code never touches asyncpg objects directly. Simple statements go through `fetch`, `fetchrow`,
`fetchval` and `execute`; anything that needs several statements in one transaction is written as an
asyncio coroutine function taking a connection and run whole on the loop thread with `transaction`,
so a
transaction is one bridge round trip rather than one per statement.

Pooled connections keep no session state: a released connection is only rolled back if it is still
in a transaction (see `_reset_connection`), so code that borrows one must not change its session
(use `SET LOCAL` and transaction-level advisory locks, which end with the transaction).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import asyncpg

from parley.config import DatabaseSettings
from parley.store import pg
from parley.store.bridge import AsyncioBridge, PendingCall
from parley.store.migrate import apply_migrations

T = TypeVar("T")

SESSION_TIME_ZONE = "UTC"
"""Every session's time zone (the pool's and the writer's own): timestamps that travel as text,
inside JSON, then read as UTC, as asyncpg's binary format reads them everywhere else."""
Record = asyncpg.Record
Connection: TypeAlias = "asyncpg.Connection[Record] | asyncpg.pool.PoolConnectionProxy[Record]"
"""A connection as store functions see it: a plain one, or one lent by the pool."""


class StoreUnavailable(RuntimeError):
    """The database is not connected (starting, restarting or stopped)."""


_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
"""Connection exception, insufficient resources (too many connections), operator intervention
(shutting down, starting up, a statement cancelled by its timeout): the server cannot answer now,
and the same request may well succeed in a moment."""


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database could not answer now (down, restarting, saturated or
    too slow) rather than that the request itself was refused: the API answers 503 for it.

    The one place that knows which errors those are, from asyncpg, from `store.pg` and from the
    operating system (a missing socket while the server is stopped); a group of them counts when
    every error in it does.

    asyncpg's `InternalClientError` is one of them: its protocol raises it when a connection is
    out of step with the server, which is what a server that ends a session leaves behind. A
    shutting-down (or restarting) server sends its idle pooled connections a FATAL error before
    it closes them; asyncpg takes that unsolicited error as a protocol fault, and a query that
    gets the connection before the close arrives fails with "cannot switch to state 12; another
    operation (2) is in progress" (drill D2, once in a few thousand requests). asyncpg aborts
    the connection as it raises, so the pool opens a new one for the retry.
    """
    if isinstance(error, BaseExceptionGroup):
        return all(database_unavailable(inner) for inner in error.exceptions)
    if isinstance(
        error,
        StoreUnavailable
        | OSError
        | TimeoutError
        | pg.PgBroken
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.InternalClientError,
    ):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(error, asyncpg.PostgresError | pg.PgError) and isinstance(sqlstate, str):
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES)
    return False


async def _init_connection(conn: asyncpg.Connection[Record]) -> None:
    # jsonb columns come back as Python values rather than strings.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _reset_connection(conn: asyncpg.Connection[Record]) -> None:
    """The pool's reset of a released connection: nothing beyond asyncpg's own rollback.

    Before calling this, asyncpg rolls back a transaction left open and drops the connection's
    Python-side listeners (`Connection._reset`), which is all Parley needs: store code never changes
    a pooled connection's session (no SET, LISTEN, session advisory locks, WITH HOLD cursors or
    temporary tables; migrations, the one user of an advisory lock, have a connection of their
    own). asyncpg's default reset would send `SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL` on every release: one more round trip on every pooled query, which
    the caller waits for (a query returns once its connection is back in the pool), and one more
    wake-up of the asyncio thread, which then has to win the GIL from the trio thread.
    """


class Database:
    """A stable handle: it survives pool restarts, so actors may keep it across a Store restart."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        command_timeout: float,
        connect_timeout: float = 10.0,
        acquire_timeout: float = DatabaseSettings.pool_acquire_timeout_seconds,
    ) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._acquire_timeout = acquire_timeout
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._bridge: AsyncioBridge | None = None
        self._pool: asyncpg.Pool | None = None

    @property
    def connected(self) -> bool:
        return self._pool is not None

    @property
    def command_timeout(self) -> float:
        return self._command_timeout

    async def connect_own(self, application_name: str) -> pg.PgConnection:
        """A connection of its own, driven from the trio thread (`store.pg`, libpq), to the
        pool's database as the pool's user, in the session time zone `SESSION_TIME_ZONE`.

        Unless the DSN (or `PGTARGETSESSIONATTRS`) says otherwise, it goes to a host that takes
        writes (`target_session_attrs=read-write`): of a primary and its standbys, the primary.
        """
        return await pg.connect(
            self._dsn,
            connect_timeout=self._connect_timeout,
            defaults={
                "fallback_application_name": application_name,
                "target_session_attrs": "read-write",
            },
            session={"TimeZone": SESSION_TIME_ZONE},
        )

    async def connect(self) -> None:
        """Start the bridge thread and open the pool (raises if PostgreSQL is unreachable)."""
        bridge = AsyncioBridge()
        bridge.start()
        try:
            self._pool = await bridge.run(
                asyncpg.create_pool,
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=self._command_timeout,
                timeout=self._connect_timeout,
                init=_init_connection,
                reset=_reset_connection,
                server_settings={"TimeZone": SESSION_TIME_ZONE},
            )
        except BaseException:
            await bridge.stop()
            raise
        self._bridge = bridge

    async def migrate(self) -> list[str]:
        """Apply pending migrations (on the loop thread, on a connection of their own)."""
        if self._bridge is None:
            raise StoreUnavailable("database is not connected")
        return await self._bridge.run(apply_migrations, self._dsn)

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Close the pool gracefully (bounded), then stop the bridge thread."""
        bridge, pool = self._bridge, self._pool
        self._bridge, self._pool = None, None
        if bridge is None:
            return
        try:
            if pool is not None:

                async def close_pool() -> None:
                    try:
                        await asyncio.wait_for(pool.close(), grace_seconds)
                    except TimeoutError:
                        pool.terminate()

                await bridge.run(close_pool)
        finally:
            await bridge.stop()

    async def run(self, fn: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
        """Run an asyncio coroutine function with the pool on the loop thread."""
        return await self.submit(fn).result()

    def submit(self, fn: Callable[[asyncpg.Pool], Awaitable[T]]) -> PendingCall[T]:
        """Start `fn(pool)` on the loop thread now; await `result()` on what it returns."""
        bridge, pool = self._bridge, self._pool
        if bridge is None or pool is None:
            raise StoreUnavailable("database is not connected")
        return bridge.submit(fn, pool)

    async def transaction(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `fn(conn)` inside one transaction on the loop thread; it commits when `fn`
        returns."""

        async def in_transaction(conn: Connection) -> T:
            async with conn.transaction():
                return await fn(conn)

        return await self.with_connection(in_transaction)

    async def with_connection(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `fn(conn)` on a pooled connection on the loop thread. The wait for a free one is
        bounded by `acquire_timeout` (then `TimeoutError`, which the API answers with 503): a
        saturated pool sheds the excess rather than queueing it without end."""
        acquire_timeout = self._acquire_timeout

        async def on_connection(pool: asyncpg.Pool) -> T:
            async with pool.acquire(timeout=acquire_timeout) as conn:
                return await fn(conn)

        return await self.run(on_connection)

    async def fetch(self, query: str, *args: Any) -> list[Record]:
        return await self.with_connection(lambda conn: conn.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> Record | None:
        return await self.with_connection(lambda conn: conn.fetchrow(query, *args))

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.with_connection(lambda conn: conn.fetchval(query, *args))

    async def execute(self, query: str, *args: Any) -> str:
        return await self.with_connection(lambda conn: conn.execute(query, *args))

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        await self.with_connection(lambda conn: conn.executemany(query, args))
