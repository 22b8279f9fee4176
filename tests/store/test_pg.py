"""The libpq driver (`store.pg`) against the test server: text parameters and rows, errors,
cancellation, a connection the server dropped, notifications, and the DSN forms libpq reads
(passwords by every method, a passfile, a service file)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import trio
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from parley.store.pg import PgBroken, PgClosed, PgConnection, PgError, connect


async def open_session(dsn: str) -> PgConnection:
    return await connect(
        dsn,
        connect_timeout=10,
        defaults={"fallback_application_name": "parley-test"},
        session={"TimeZone": "UTC"},
    )


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[PgConnection]:
    async with await open_session(database_url) as connection:
        yield connection


async def backend_state(dsn: str, pid: int) -> str | None:
    async with await open_session(dsn) as admin:
        rows = await admin.execute(
            "SELECT state FROM pg_stat_activity WHERE pid = $1::int", [str(pid).encode()]
        )
    return rows[0][0].decode() if rows and rows[0][0] is not None else None


async def until_active(dsn: str, pid: int) -> None:
    """Poll until backend `pid` runs a statement (the caller's own deadline bounds it)."""
    while True:
        if await backend_state(dsn, pid) == "active":
            return
        await trio.sleep(0.01)


async def terminate(dsn: str, pid: int) -> None:
    async with await open_session(dsn) as admin:
        await admin.execute("SELECT pg_terminate_backend($1::int)", [str(pid).encode()])


async def test_parameters_and_rows_travel_as_text(pg: PgConnection) -> None:
    rows = await pg.execute("SELECT $1::int + 1, NULL::text, now()::text", [b"41"])
    (answer, nothing, now) = rows[0]
    assert (answer, nothing) == (b"42", None)
    assert now is not None and now.endswith(b"+00")  # the session's time zone is UTC
    assert await pg.execute("SELECT current_setting('application_name')") == [(b"parley-test",)]


async def test_prepared_statements_run_by_name(pg: PgConnection) -> None:
    await pg.prepare("double", "SELECT $1::int * 2")
    for value in (1, 21):
        await pg.send_prepared("double", [str(value).encode()])
        assert await pg.result() == [(str(value * 2).encode(),)]


async def test_an_error_is_raised_and_the_session_goes_on(pg: PgConnection) -> None:
    with pytest.raises(PgError) as refused:
        await pg.execute("SELECT 1 / $1::int", [b"0"])
    assert refused.value.sqlstate == "22012"
    assert await pg.execute("SELECT 2") == [(b"2",)]


async def test_a_cancelled_caller_stops_its_statement_and_the_session_goes_on(
    pg: PgConnection, database_url: str
) -> None:
    caller = trio.CancelScope()

    async def cancel_when_running() -> None:
        await until_active(database_url, pg.backend_pid)
        caller.cancel()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_when_running)
            with caller:
                await pg.execute("SELECT pg_sleep(600)")
    # Back from the cancellation only once the server said the statement stopped.
    assert caller.cancelled_caught and pg.usable
    assert await backend_state(database_url, pg.backend_pid) == "idle"
    assert await pg.execute("SELECT 3") == [(b"3",)]


async def test_a_connection_the_server_dropped_while_idle_says_nothing_was_sent(
    pg: PgConnection, database_url: str
) -> None:
    await terminate(database_url, pg.backend_pid)
    with trio.fail_after(60):
        # The backend leaves pg_stat_activity after it has said goodbye to its client.
        while True:
            if await backend_state(database_url, pg.backend_pid) is None:
                break
            await trio.sleep(0.01)
    with pytest.raises(PgClosed):
        await pg.execute("SELECT 4")
    assert not pg.usable
    with pytest.raises(PgBroken):
        await pg.execute("SELECT 4")


async def test_a_connection_the_server_dropped_mid_statement_is_broken_not_stuck(
    pg: PgConnection, database_url: str
) -> None:
    async def kill_when_running() -> None:
        await until_active(database_url, pg.backend_pid)
        await terminate(database_url, pg.backend_pid)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_when_running)
            with pytest.raises(PgBroken) as broken:
                await pg.execute("SELECT pg_sleep(600)")
    assert not isinstance(broken.value, PgClosed) and not pg.usable


async def test_notifications_arrive_waiting_or_during_a_statement(
    pg: PgConnection, database_url: str
) -> None:
    await pg.execute("LISTEN parley_test")
    async with await open_session(database_url) as other:
        await other.execute("SELECT pg_notify('parley_test', $1)", ["héllo".encode()])
        with trio.fail_after(60):
            first = await pg.notification()
        assert (first.channel, first.payload, first.pid) == (
            "parley_test", "héllo", other.backend_pid,
        )  # fmt: skip
        # Others arrive while this session runs a statement of its own: none is lost.
        await other.execute("SELECT pg_notify('parley_test', 'a'), pg_notify('parley_test', 'b')")
        assert await pg.execute("SELECT 1") == [(b"1",)]
        with trio.fail_after(60):
            assert [(await pg.notification()).payload for _ in range(2)] == ["a", "b"]
    # A wait given up leaves the session as it was.
    with trio.move_on_after(0.05):
        await pg.notification()
    assert await pg.execute("SELECT 5") == [(b"5",)]


async def test_a_host_that_refuses_is_skipped_for_the_next(database_url: str) -> None:
    refusing = trio.socket.socket()
    await refusing.bind(("127.0.0.1", 0))
    port = refusing.getsockname()[1]
    refusing.close()  # nothing listens there now
    params = conninfo_to_dict(database_url)
    params["host"] = f"127.0.0.1,{params.get('host', 'localhost')}"
    params["port"] = f"{port},{params.get('port', 5432)}"
    async with await open_session(make_conninfo("", **params)) as connection:
        assert await connection.execute("SELECT 6") == [(b"6",)]


# -- passwords, a passfile and a service file, on the embedded server whose pg_hba.conf the tests
# may edit -----------------------------------------------------------------------------------

# A password SASLprep changes (RFC 4013: a soft hyphen maps to nothing, a Roman numeral to its
# letters): the server stores the prepared form, so a client that skips SASLprep cannot log in.
NON_ASCII_PASSWORD = "pässwörd\u00adⅨ"
PREPARED_PASSWORD = "pässwördIX"
PASSWORD_ROLES = {
    "parley_scram": ("scram-sha-256", "pw-parley_scram"),
    "parley_md5": ("md5", "pw-parley_md5"),
    "parley_clear": ("password", "pw-parley_clear"),
    "parley_unicode": ("scram-sha-256", NON_ASCII_PASSWORD),
}


@pytest.fixture
def password_roles(postgres_dsn: str, database_url: str) -> Iterator[str]:
    """Roles that must log in with a password (one per method) on the embedded server."""
    if os.environ.get("DATABASE_URL"):
        pytest.skip("needs the embedded server, whose pg_hba.conf the tests can change")

    async def admin(*statements: str) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            rows: list[asyncpg.Record] = []
            for statement in statements:
                rows = await conn.fetch(statement)
            return rows
        finally:
            await conn.close()

    (row,) = asyncio.run(admin("SHOW hba_file"))
    hba = row[0]
    with open(hba) as file:
        original = file.read()
    rules = "".join(f"local all {role} {method}\n" for role, (method, _) in PASSWORD_ROLES.items())
    statements = []
    for role, (method, password) in PASSWORD_ROLES.items():
        encryption = "md5" if method == "md5" else "scram-sha-256"
        statements += [
            f"DROP ROLE IF EXISTS {role}",
            f"SET password_encryption = '{encryption}'",
            f"CREATE ROLE {role} LOGIN PASSWORD '{password}'",
        ]
    with open(hba, "w") as file:
        file.write(rules + original)
    try:
        asyncio.run(admin(*statements, "SELECT pg_reload_conf()"))
        yield database_url
    finally:
        with open(hba, "w") as file:
            file.write(original)
        drops = [f"DROP ROLE IF EXISTS {role}" for role in PASSWORD_ROLES]
        asyncio.run(admin("SELECT pg_reload_conf()", *drops))


def as_user(dsn: str, userinfo: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc.rpartition('@')[2]}"))


async def current_user(dsn: str) -> bytes | None:
    async with await open_session(dsn) as connection:
        return (await connection.execute("SELECT current_user"))[0][0]


@pytest.mark.parametrize("role", sorted(PASSWORD_ROLES))
async def test_password_authentication(password_roles: str, role: str) -> None:
    with pytest.raises(PgBroken, match="password"):
        await open_session(as_user(password_roles, role))  # no password in the DSN
    with pytest.raises(PgBroken, match="password authentication failed"):
        await open_session(as_user(password_roles, f"{role}:wrong"))
    password = PASSWORD_ROLES[role][1]
    assert await current_user(as_user(password_roles, f"{role}:{password}")) == role.encode()


async def test_a_non_ascii_password_is_prepared_as_the_server_prepared_it(
    password_roles: str,
) -> None:
    # The same password as typed, and in the form SASLprep makes of it, both log in.
    for password in (NON_ASCII_PASSWORD, PREPARED_PASSWORD):
        dsn = f"{as_user(password_roles, 'parley_unicode')}&password={password}"
        assert await current_user(dsn) == b"parley_unicode"


async def test_a_passfile_and_a_service_file_are_read(
    password_roles: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text("*:*:*:parley_scram:pw-parley_scram\n")
    passfile.chmod(0o600)
    dsn = f"{as_user(password_roles, 'parley_scram')}&passfile={passfile}"
    assert await current_user(dsn) == b"parley_scram"

    params = conninfo_to_dict(password_roles)
    service: dict[str, object] = {k: params[k] for k in ("host", "port", "dbname") if k in params}
    service |= {"user": "parley_scram", "passfile": str(passfile)}
    services = tmp_path / "pg_service.conf"
    services.write_text("[parley]\n" + "".join(f"{k}={v}\n" for k, v in service.items()))
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    assert await current_user("service=parley") == b"parley_scram"
