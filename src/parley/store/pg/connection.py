"""One PostgreSQL session on libpq (psycopg's `pq` wrapper), driven from the trio thread.

libpq does the protocol: the DSN in every form it takes (URIs and key=value strings, several
hosts, `target_session_attrs`, `sslmode` and the other TLS options, passfiles, service files and
the `PG*` environment variables), authentication (SCRAM with SASLprep and channel binding, MD5,
GSSAPI) and TLS. This module only waits for its socket the trio way
(`trio.lowlevel.wait_readable` / `wait_writable`), as psycopg's own `waiting` module does for
threads and asyncio, so nothing runs on another thread and no asyncio loop is involved.

Connecting follows psycopg's own `Connection.connect`: the DSN is split into one attempt per host
(and per address a host name resolves to; `load_balance_hosts` and `target_session_attrs =
prefer-standby` as libpq orders them) by `psycopg.conninfo.conninfo_attempts`, in a worker
thread because it resolves names, and each attempt is bounded by the DSN's `connect_timeout`
(libpq ignores it in non-blocking mode). Hosts that only a service file names are left to libpq,
which then resolves them itself and tries them within one attempt.

Parameters and results travel in text format; one statement is in flight at a time.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import psycopg
import trio
from psycopg import pq
from psycopg.conninfo import (
    conninfo_attempts,
    conninfo_to_dict,
    make_conninfo,
    timeout_from_conninfo,
)

Row = tuple[bytes | None, ...]
P = ParamSpec("P")
T = TypeVar("T")

_MIN_LIBPQ = 170000
"""libpq 17: `PQcancelCreate`, a cancel request that does not block (psycopg's binary wheel
bundles a newer libpq)."""


class PgError(Exception):
    """PostgreSQL refused the statement (it was rolled back); the session is still usable."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(f"{message} (SQLSTATE {sqlstate})")
        self.sqlstate = sqlstate


class PgBroken(Exception):
    """The connection failed or could not be made; it cannot be used again."""


class PgClosed(PgBroken):
    """The server had closed the connection while it was idle (a restart, a terminated backend):
    nothing of the statement was sent, so it can go to a new connection as it is."""


@dataclass(frozen=True)
class Notification:
    """A NOTIFY on a channel the session LISTENs to."""

    channel: str
    payload: str
    pid: int
    """The notifying backend's process id."""


async def connect(
    dsn: str,
    *,
    connect_timeout: float,
    defaults: Mapping[str, str] | None = None,
    session: Mapping[str, str] | None = None,
    cancel_grace_seconds: float = 5.0,
) -> PgConnection:
    """A session on the first of the DSN's hosts that accepts it (as `target_session_attrs`
    says); raises `PgBroken` with every attempt's reason if none did.

    `defaults` are connection parameters used where neither the DSN nor the environment sets
    them (e.g. `fallback_application_name`); `session` are run-time settings set once connected
    (e.g. TimeZone). `connect_timeout` bounds each host's attempt unless the DSN sets its own.
    """
    if pq.version() < _MIN_LIBPQ:
        raise PgBroken(f"libpq {pq.version()} is too old: 17 or newer is needed")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise PgBroken(f"the DSN does not parse: {exc}") from None
    for key, value in (defaults or {}).items():
        if key not in params and not _from_environment(key):
            params[key] = value
    params["client_encoding"] = "UTF8"  # what `Row` values are decoded as
    timeout = (
        float(timeout_from_conninfo(params))
        if "connect_timeout" in params or _from_environment("connect_timeout")
        else connect_timeout
    )
    try:
        attempts = await trio.to_thread.run_sync(conninfo_attempts, params)
    except psycopg.Error as exc:
        raise PgBroken(str(exc)) from None
    failures: list[str] = []
    for attempt in attempts:
        with trio.move_on_after(timeout) as waited:
            try:
                pgconn = await _connect_one(make_conninfo("", **attempt))
            except PgBroken as exc:
                failures.append(str(exc))
                continue
        if waited.cancelled_caught:
            failures.append(f"{_where(attempt)}: no answer within {timeout:g} s")
            continue
        connection = PgConnection(pgconn, cancel_grace_seconds=cancel_grace_seconds)
        try:
            for name, value in (session or {}).items():
                await connection.execute(
                    "SELECT pg_catalog.set_config($1, $2, false)", [name.encode(), value.encode()]
                )
        except BaseException:
            connection.close()
            raise
        return connection
    raise PgBroken("could not connect: " + "; ".join(failures))


class PgConnection:
    """One PostgreSQL session. Not safe for concurrent use: one statement (or one wait for a
    notification) at a time, from one task at a time.

    A caller cancelled while its statement runs (or out of its own deadline) cancels that
    statement on the server and waits for the server to confirm, shielded and bounded by
    `cancel_grace_seconds`, so the session is usable again; if the server does not confirm in
    time, the connection is closed instead.
    """

    def __init__(self, pgconn: pq.abc.PGconn, *, cancel_grace_seconds: float) -> None:
        self._pgconn = pgconn
        self._fd = pgconn.socket
        self._grace = cancel_grace_seconds
        self._usable = True
        self._in_flight = False
        self._notifications: deque[Notification] = deque()
        self._goodbye: str | None = None
        pgconn.notice_handler = self._notice

    @property
    def usable(self) -> bool:
        return self._usable

    @property
    def backend_pid(self) -> int:
        return self._pgconn.backend_pid

    @property
    def host(self) -> str:
        """The host (or socket directory) this session went to."""
        return self._pgconn.host.decode()

    @property
    def port(self) -> int:
        return int(self._pgconn.port.decode())

    def close(self) -> None:
        """Say goodbye (libpq sends Terminate without waiting) and close the socket."""
        if self._usable:
            self._usable = False
            trio.lowlevel.notify_closing(self._fd)
            self._pgconn.finish()

    async def __aenter__(self) -> PgConnection:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    # -- statements -------------------------------------------------------------------------

    async def execute(self, query: str, params: Sequence[bytes | None] = ()) -> list[Row]:
        """Run `query` (an unnamed statement, `$n` parameters) and return its rows; raises
        `PgError` if PostgreSQL refused it."""
        self._begin()
        self._call(self._pgconn.send_query_params, query.encode(), list(params))
        await self._sent()
        return await self.result()

    async def prepare(self, name: str, query: str) -> None:
        """Parse `query` as the named statement `name` (parameter types as the query says)."""
        self._begin()
        self._call(self._pgconn.send_prepare, name.encode(), query.encode())
        await self._sent()
        await self.result()

    async def send_prepared(self, name: str, params: Sequence[bytes | None]) -> None:
        """Send the prepared statement `name` with `params`; `result` collects its answer.

        Raises `PgClosed` (nothing was sent) if the server had closed the connection since the
        last statement."""
        self._begin()
        self._call(self._pgconn.send_query_prepared, name.encode(), list(params))
        await self._sent()

    async def result(self) -> list[Row]:
        """The rows of the statement sent last, once the server has answered it; raises
        `PgError` if it failed (it was rolled back), `PgBroken` if the connection did."""
        try:
            results = await self._collect()
        except trio.Cancelled:
            await self._settle()
            raise
        self._in_flight = False
        return self._rows_of(results)

    async def notification(self) -> Notification:
        """The next notification on a channel this session LISTENs to (`execute("LISTEN
        ...")`), waiting for one if none has arrived; not while a statement is in flight."""
        self._check()
        while not self._notifications:
            await trio.lowlevel.wait_readable(self._fd)
            self._consume()
        return self._notifications.popleft()

    # -- the exchange -----------------------------------------------------------------------

    def _begin(self) -> None:
        """Check that the session is idle and still open (reading whatever the server sent
        meanwhile: notifications, or its goodbye)."""
        self._check()
        if self._in_flight:
            raise RuntimeError("a statement is already in flight on this connection")
        try:
            self._consume()
        except PgBroken as exc:
            raise PgClosed(str(exc)) from None
        if self._goodbye is not None:
            # The server said why it is about to close (it may not have closed yet).
            self.close()
            raise PgClosed(f"the server is closing the connection: {self._goodbye}")
        self._in_flight = True

    async def _sent(self) -> None:
        """Flush the statement to the server; a caller cancelled meanwhile settles the session
        (`_settle`) before the cancellation goes on."""
        try:
            await self._flush()
        except trio.Cancelled:
            await self._settle()
            raise

    async def _flush(self) -> None:
        # While the server's answer cannot leave (our socket buffer full), it may stop reading
        # what we send: reading while waiting to write keeps both sides moving.
        while self._call(self._pgconn.flush):
            await self._wait_readable_or_writable()
            self._consume()

    async def _collect(self) -> list[pq.abc.PGresult]:
        results: list[pq.abc.PGresult] = []
        pgconn = self._pgconn
        while True:
            while pgconn.is_busy():
                await trio.lowlevel.wait_readable(self._fd)
                self._consume()
            result = pgconn.get_result()
            if result is None:
                return results
            results.append(result)

    def _rows_of(self, results: list[pq.abc.PGresult]) -> list[Row]:
        rows: list[Row] = []
        error: PgError | None = None
        for result in results:
            if result.status == pq.ExecStatus.TUPLES_OK:
                columns = range(result.nfields)
                rows = [
                    tuple(result.get_value(row, column) for column in columns)
                    for row in range(result.ntuples)
                ]
            elif result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.EMPTY_QUERY):
                sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE) or b"XX000"
                error = PgError(sqlstate.decode(), result.get_error_message().strip())
        if self._pgconn.status == pq.ConnStatus.BAD:
            self.close()
            raise PgBroken(f"the connection closed: {error or self._error_message()}")
        if error is not None:
            raise error
        return rows

    async def _settle(self) -> None:
        """After a caller gave up on its statement: finish sending it, ask the server to cancel
        it, and read its answer to the end, so the next statement finds the session idle.

        The statement may have finished before the request arrived; then it stands."""
        with trio.CancelScope(shield=True), trio.move_on_after(self._grace) as waited:
            try:
                await self._flush()
                await self._request_cancel()
                await self._collect()
                self._in_flight = False
            except PgBroken:
                pass
        if waited.cancelled_caught or self._in_flight:
            self.close()

    async def _request_cancel(self) -> None:
        """Send a cancel request (on a connection of its own, as the protocol has it, with the
        session's own TLS settings) and wait for the server to take it."""
        cancel = self._call(self._pgconn.cancel_conn)
        try:
            self._call(cancel.start)
            while True:
                status = self._call(cancel.poll)
                if status == pq.PollingStatus.OK:
                    return
                if status == pq.PollingStatus.READING:
                    await trio.lowlevel.wait_readable(cancel.socket)
                elif status == pq.PollingStatus.WRITING:
                    await trio.lowlevel.wait_writable(cancel.socket)
                else:
                    raise PgBroken(f"the cancel request failed: {cancel.get_error_message()}")
        finally:
            cancel.finish()

    # -- the socket -------------------------------------------------------------------------

    def _check(self) -> None:
        if not self._usable:
            raise PgBroken("the connection is closed")

    def _consume(self) -> None:
        """Read what the socket has (without waiting) into libpq, and the notifications out."""
        self._call(self._pgconn.consume_input)
        if self._pgconn.status == pq.ConnStatus.BAD:
            message = self._error_message()
            self.close()
            raise PgBroken(f"the connection closed: {message}")
        while (notify := self._pgconn.notifies()) is not None:
            channel, payload = notify.relname.decode(), notify.extra.decode()
            self._notifications.append(Notification(channel, payload, notify.be_pid))

    async def _wait_readable_or_writable(self) -> None:
        """Until the socket is readable or writable, whichever comes first."""
        async with trio.open_nursery() as nursery:

            async def until(ready: Callable[[int], Awaitable[None]]) -> None:
                await ready(self._fd)
                nursery.cancel_scope.cancel()

            nursery.start_soon(until, trio.lowlevel.wait_readable)
            nursery.start_soon(until, trio.lowlevel.wait_writable)

    def _call(self, method: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A libpq call; one that fails (the socket, out of memory) closes the connection."""
        try:
            return method(*args, **kwargs)
        except psycopg.OperationalError as exc:
            self.close()
            raise PgBroken(str(exc).strip()) from None

    def _notice(self, notice: pq.abc.PGresult) -> None:
        """libpq's notice receiver. An error the server sends while no statement runs (a
        terminated backend, a shutdown) arrives as a notice, before the server closes."""
        severity = notice.error_field(pq.DiagnosticField.SEVERITY_NONLOCALIZED)
        if severity in (b"FATAL", b"PANIC") and not self._in_flight:
            self._goodbye = notice.get_error_message().strip()

    def _error_message(self) -> str:
        return self._pgconn.get_error_message().strip() or "no reason given"


async def _connect_one(conninfo: str) -> pq.abc.PGconn:
    """Drive one libpq connection attempt to the end (it may try several addresses)."""
    pgconn = pq.PGconn.connect_start(conninfo.encode())
    try:
        while True:
            if pgconn.status == pq.ConnStatus.BAD:
                raise PgBroken(pgconn.get_error_message().strip())
            status = pgconn.connect_poll()
            if status == pq.PollingStatus.OK:
                break
            # The socket may change between polls: libpq moves on to the next address, or
            # retries without TLS (`sslmode=prefer`).
            if status == pq.PollingStatus.READING:
                await trio.lowlevel.wait_readable(pgconn.socket)
            elif status == pq.PollingStatus.WRITING:
                await trio.lowlevel.wait_writable(pgconn.socket)
            else:
                raise PgBroken(pgconn.get_error_message().strip())
        pgconn.nonblocking = 1
    except BaseException:
        pgconn.finish()
        raise
    return pgconn


def _from_environment(keyword: str) -> bool:
    """Whether the environment sets connection parameter `keyword` (its `PG*` variable)."""
    for option in pq.Conninfo.get_defaults():
        if option.keyword.decode() == keyword and option.envvar:
            return bool(os.environ.get(option.envvar.decode()))
    return False


def _where(attempt: Mapping[str, object]) -> str:
    host = attempt.get("hostaddr") or attempt.get("host") or "the default host"
    return f"{host}:{attempt.get('port') or 5432}"
