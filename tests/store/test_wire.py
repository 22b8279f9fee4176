"""The writer's own PostgreSQL client (`store.wire`) against a real server: the DSN read as asyncpg
reads it, password authentication, errors, cancellation and a connection the server dropped."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import trio

from parley.store.wire import (
    Endpoint,
    WireBroken,
    WireConnection,
    WireError,
    WireUnsupported,
    _Scram,
    endpoints,
)


async def connect(dsn: str) -> WireConnection:
    return await WireConnection.connect(dsn, application_name="parley-test", time_zone="UTC")


@pytest.fixture
async def wire(database_url: str) -> AsyncIterator[WireConnection]:
    connection = await connect(database_url)
    try:
        yield connection
    finally:
        await connection.aclose()


async def run(
    connection: WireConnection, query: str, *params: bytes | None
) -> list[list[bytes | None]]:
    await connection.prepare("", query)
    await connection.send_execute("", params)
    return await connection.read_rows()


def test_the_dsn_is_read_as_asyncpg_reads_it() -> None:
    (local,) = endpoints("postgresql://alice:secret@/chat?host=/run/pg")
    assert local == Endpoint("/run/pg/.s.PGSQL.5432", "alice", "secret", "chat", None, False)
    (remote,) = endpoints("postgresql://bob@db.example:6543/chat?sslmode=require")
    assert remote.address == ("db.example", 6543)
    assert remote.ssl is not None and remote.ssl_required
    (preferred,) = endpoints("postgresql://bob@db.example/chat")
    assert preferred.ssl is not None and not preferred.ssl_required
    with pytest.raises(WireUnsupported):
        endpoints("postgresql://bob@db.example/chat?sslmode=require&sslnegotiation=direct")


def test_scram_matches_the_rfc_7677_exchange() -> None:
    scram = _Scram("pencil", user="user", nonce="rOprNGfwEbeRWgbNEkqO")
    assert scram.client_first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    final = scram.client_final(
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    assert final == (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    scram.verify_server(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    with pytest.raises(WireBroken):
        scram.verify_server(b"v=" + b"A" * 44)


async def test_parameters_and_rows_travel_as_text(wire: WireConnection) -> None:
    rows = await run(wire, "SELECT $1::int + 1, NULL::text, now()::text", b"41")
    (answer, nothing, now) = rows[0]
    assert (answer, nothing) == (b"42", None)
    assert now is not None and now.endswith(b"+00")  # the session's time zone is UTC


async def test_an_error_is_raised_and_the_session_goes_on(wire: WireConnection) -> None:
    with pytest.raises(WireError) as refused:
        await run(wire, "SELECT 1 / $1::int", b"0")
    assert refused.value.sqlstate == "22012"
    assert await run(wire, "SELECT 2") == [[b"2"]]


async def test_a_cancelled_statement_is_stopped_on_the_server(
    wire: WireConnection, database_url: str
) -> None:
    (pid,) = (await run(wire, "SELECT pg_backend_pid()"))[0]
    await wire.prepare("sleep", "SELECT pg_sleep(600)")
    await wire.send_execute("sleep", [])
    admin = await connect(database_url)
    try:
        with trio.fail_after(60):  # until the server is inside the statement
            while await run(  # noqa: ASYNC110 (the server's view)
                admin, "SELECT wait_event FROM pg_stat_activity WHERE pid = $1::int", pid
            ) != [[b"PgSleep"]]:
                await trio.sleep(0.01)
    finally:
        await admin.aclose()
    with trio.move_on_after(0.2):
        await wire.read_rows()
    # Left to run, the statement would hold the session for ten minutes.
    with trio.fail_after(60):
        await wire.cancel()
        assert wire.usable and await run(wire, "SELECT 3") == [[b"3"]]


async def test_a_connection_the_server_dropped_is_broken_not_stuck(
    wire: WireConnection, database_url: str
) -> None:
    (pid,) = (await run(wire, "SELECT pg_backend_pid()"))[0]
    assert pid is not None
    admin = await connect(database_url)
    try:
        await run(admin, "SELECT pg_terminate_backend($1::int)", pid)
    finally:
        await admin.aclose()
    with pytest.raises((WireBroken, WireError)):
        await run(wire, "SELECT 4")
    with pytest.raises(WireBroken):
        await run(wire, "SELECT 4")
    assert not wire.usable


# -- password authentication, on the embedded server whose pg_hba.conf the tests may edit --------

PASSWORD_ROLES = {"parley_scram": "scram-sha-256", "parley_md5": "md5", "parley_clear": "password"}


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
    rules = "".join(f"local all {role} {method}\n" for role, method in PASSWORD_ROLES.items())
    statements = []
    for role, method in PASSWORD_ROLES.items():
        encryption = "md5" if method == "md5" else "scram-sha-256"
        statements += [
            f"DROP ROLE IF EXISTS {role}",
            f"SET password_encryption = '{encryption}'",
            f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'",
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


@pytest.mark.parametrize("role", sorted(PASSWORD_ROLES))
async def test_password_authentication(password_roles: str, role: str) -> None:
    with pytest.raises(WireBroken, match="password"):
        await connect(as_user(password_roles, role))  # no password in the DSN
    with pytest.raises(WireError):
        await connect(as_user(password_roles, f"{role}:wrong"))
    connection = await connect(as_user(password_roles, f"{role}:pw-{role}"))
    try:
        assert await run(connection, "SELECT current_user") == [[role.encode()]]
    finally:
        await connection.aclose()
