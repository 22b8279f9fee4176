"""The writer's connection against servers of the test's own (`tests.store.servers`): a primary
with TLS and a hot standby of it. A multi-host DSN whose first host is the standby makes the writer
choose the primary; TLS with `sslmode=require` and `verify-full` (and SCRAM with channel binding
and a non-ASCII password over it); the writer's batch over TLS."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from parley.store import Database
from parley.store.conversations import ConversationStore
from parley.store.messages import MessageStore, NewMessage
from parley.store.migrate import apply_migrations
from parley.store.pg import PgBroken, PgConnection
from parley.store.users import UserStore
from tests.store.servers import Certificates, Server, make_certificates, servers

TLS_PASSWORD = "tls-pässwörd\u00adⅨ"
"""SCRAM over TLS with a password SASLprep changes (see tests/store/test_pg.py)."""


@dataclass(frozen=True)
class Cluster:
    primary: Server
    standby: Server
    certificates: Certificates | None


async def _prepare(primary: Server, standby: Server) -> None:
    """The schema in database `parley`, a role that may log in only over TLS, and a standby that
    has replayed both."""
    admin = await asyncpg.connect(primary.url())
    try:
        await admin.execute("CREATE DATABASE parley")
        await admin.execute(f"CREATE ROLE parley_tls LOGIN SUPERUSER PASSWORD '{TLS_PASSWORD}'")
        await apply_migrations(primary.url(dbname="parley"))
        written = await admin.fetchval("SELECT pg_current_wal_lsn()::text")
    finally:
        await admin.close()
    replica = await asyncpg.connect(standby.url())
    try:
        async with asyncio.timeout(120):
            while True:
                query = "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn"
                if await replica.fetchval(query, written):
                    break
                await asyncio.sleep(0.05)
    finally:
        await replica.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with servers() as started:
        certificates = make_certificates(started.root) if started.binaries.tls else None
        primary = started.primary("primary", certificates=certificates)
        standby = started.standby("standby", primary)
        asyncio.run(_prepare(primary, standby))
        yield Cluster(primary, standby, certificates)


@pytest.fixture
def tls(cluster: Cluster) -> Certificates:
    if cluster.certificates is None:
        pytest.skip("no PostgreSQL built with OpenSSL here (Debian's postgresql package has one)")
    return cluster.certificates


def both(first: Server, second: Server, **params: str) -> str:
    words = {"host": "127.0.0.1,127.0.0.1", "port": f"{first.port},{second.port}"}
    words |= {"user": "postgres", "dbname": "parley"} | params
    return " ".join(f"{key}={value}" for key, value in words.items())


async def writer_session(dsn: str) -> PgConnection:
    """The connection the message writer would open for `dsn`."""
    return await Database(dsn, min_size=1, max_size=1, command_timeout=30).connect_own("test")


async def in_recovery(connection: PgConnection) -> bool:
    return (await connection.execute("SELECT pg_is_in_recovery()")) == [(b"t",)]


async def test_the_writer_connects_to_the_read_write_host_of_a_multi_host_dsn(
    cluster: Cluster,
) -> None:
    primary, standby = cluster.primary, cluster.standby
    async with await writer_session(both(standby, primary)) as connection:
        assert connection.port == primary.port and not await in_recovery(connection)
    url = f"postgresql://postgres@127.0.0.1:{standby.port},127.0.0.1:{primary.port}/parley"
    async with await writer_session(url) as connection:
        assert connection.port == primary.port
    # The DSN's own choice stands: here the first host that answers, the standby.
    async with await writer_session(both(standby, primary, target_session_attrs="any")) as conn:
        assert conn.port == standby.port and await in_recovery(conn)


@pytest.mark.parametrize(
    ("attrs", "standby_first", "expect_standby"),
    [
        ("read-write", True, False),
        ("primary", True, False),
        ("read-only", False, True),
        ("standby", False, True),
        ("prefer-standby", False, True),
    ],
)
async def test_target_session_attrs_choose_among_the_hosts(
    cluster: Cluster, attrs: str, standby_first: bool, expect_standby: bool
) -> None:
    standby, primary = cluster.standby, cluster.primary
    hosts = (standby, primary) if standby_first else (primary, standby)
    async with await writer_session(both(*hosts, target_session_attrs=attrs)) as connection:
        assert await in_recovery(connection) == expect_standby


async def test_the_writer_stores_a_batch_through_a_multi_host_dsn(cluster: Cluster) -> None:
    primary, standby = cluster.primary, cluster.standby
    setup = Database(primary.url(dbname="parley"), min_size=1, max_size=1, command_timeout=30)
    await setup.connect()
    try:
        users = UserStore(setup)
        alice = await users.create(email="a@example.com", username="alice", password_hash="x")
        bob = await users.create(email="b@example.com", username="bob", password_hash="x")
        direct, _ = await ConversationStore(setup).open_direct(alice.id, bob.id)
        writer_db = Database(both(standby, primary), min_size=1, max_size=1, command_timeout=30)
        async with MessageStore(writer_db).batch_inserter() as inserter:
            pending = await inserter.start([NewMessage(direct.id, alice.id, "hi", "c1")])
            (written,) = await pending.result()
        assert (written.message.seq, written.duplicate) == (1, False)
        assert await MessageStore(setup).get(direct.id, 1) == written.message
    finally:
        await setup.close()


# -- TLS ------------------------------------------------------------------------------------


def tls_dsn(server: Server, **params: str) -> str:
    return server.dsn(user="parley_tls", dbname="parley", password=TLS_PASSWORD, **params)


async def uses_tls(connection: PgConnection) -> bool:
    rows = await connection.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    return rows == [(b"t",)]


async def test_tls_with_sslmode_require(cluster: Cluster, tls: Certificates) -> None:
    async with await writer_session(tls_dsn(cluster.primary, sslmode="require")) as connection:
        assert await uses_tls(connection)
    # The role may only log in over TLS (pg_hba.conf): without it the server refuses.
    with pytest.raises(PgBroken, match=r"rejects connection|no pg_hba.conf entry"):
        await writer_session(tls_dsn(cluster.primary, sslmode="disable"))


async def test_tls_with_verify_full_checks_the_certificate_and_the_host_name(
    cluster: Cluster, tls: Certificates
) -> None:
    verified = tls_dsn(
        cluster.primary, host="localhost", sslmode="verify-full", sslrootcert=str(tls.ca)
    )
    # SCRAM bound to this TLS channel, the non-ASCII password prepared as the server did.
    async with await writer_session(f"{verified} channel_binding=require") as connection:
        assert await uses_tls(connection)
    wrong_name = f"{verified} hostaddr=127.0.0.1 host=db.invalid"
    with pytest.raises(PgBroken, match="does not match host name"):
        await writer_session(wrong_name)
    unknown_ca = tls_dsn(cluster.primary, sslmode="verify-full", sslrootcert=str(tls.cert))
    with pytest.raises(PgBroken, match="certificate verify failed"):
        await writer_session(unknown_ca)


async def test_the_writer_stores_a_batch_over_tls(cluster: Cluster, tls: Certificates) -> None:
    dsn = tls_dsn(cluster.primary, host="localhost", sslmode="verify-full", sslrootcert=str(tls.ca))
    setup = Database(
        cluster.primary.url(dbname="parley"), min_size=1, max_size=1, command_timeout=30
    )
    await setup.connect()
    try:
        users = UserStore(setup)
        tag = uuid.uuid4().hex[:8]
        carol, dave = [
            await users.create(email=f"{n}@example.com", username=n, password_hash="x")
            for n in (f"carol{tag}", f"dave{tag}")
        ]
        direct, _ = await ConversationStore(setup).open_direct(carol.id, dave.id)
        writer_db = Database(dsn, min_size=1, max_size=1, command_timeout=30)
        async with MessageStore(writer_db).batch_inserter() as inserter:
            pending = await inserter.start([NewMessage(direct.id, carol.id, "over TLS", None)])
            (written,) = await pending.result()
            ssl = await setup.fetchval(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                " WHERE a.application_name = 'parley-writer' AND a.datname = 'parley'"
            )
        assert written.message.body == "over TLS" and ssl is True
    finally:
        await setup.close()
