"""Shared fixtures: a real PostgreSQL for the session, one fresh database per test, settings.

PostgreSQL is pgserver's embedded server (data under `.parley/test-pgdata`) unless `DATABASE_URL`
names another server. The schema is migrated once into a template database; every test that asks for
`database_url` gets its own clone of it (CREATE DATABASE ... TEMPLATE), so tests never see each
other's
rows and need no cleanup beyond dropping their database.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from parley.config import PROJECT_ROOT, Settings, load_settings
from parley.store.embedded import start_embedded, stop_embedded
from parley.store.migrate import apply_migrations

TEST_JWT_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
TEST_OPERATOR_TOKEN = "test-operator-token"


def with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at database `name`."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a maintenance database on the test server (embedded unless DATABASE_URL is set)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    dsn, server = start_embedded(PROJECT_ROOT / ".parley" / "test-pgdata")
    try:
        yield dsn
    finally:
        stop_embedded(server)


@pytest.fixture(scope="session")
def template_database(postgres_dsn: str) -> Iterator[str]:
    name = f"parley_template_{os.getpid()}"
    asyncio.run(_admin(postgres_dsn, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"))
    asyncio.run(apply_migrations(with_database(postgres_dsn, name)))
    try:
        yield name
    finally:
        asyncio.run(_admin(postgres_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def database_url(postgres_dsn: str, template_database: str) -> Iterator[str]:
    """A freshly migrated database of this test's own."""
    name = f"parley_test_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin(postgres_dsn, f"CREATE DATABASE {name} TEMPLATE {template_database}"))
    try:
        yield with_database(postgres_dsn, name)
    finally:
        asyncio.run(_admin(postgres_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def make_settings(tmp_path: Path, database_url: str, **overrides: dict[str, Any]) -> Settings:
    """Test settings: port 0, a known JWT secret and operator token, the test's own data dir."""
    sections: dict[str, dict[str, Any]] = {
        "server": {
            "env": "test",
            "port": 0,
            "data_dir": str(tmp_path / "data"),
            "gc_freeze": False,
        },
        "database": {"url": database_url, "pool_min_size": 1, "pool_max_size": 4},
        "auth": {"jwt_secret": TEST_JWT_SECRET, "argon2_memory_kib": 1024, "argon2_time_cost": 1},
        "debug": {"operator_token": TEST_OPERATOR_TOKEN},
    }
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    return load_settings(environ={}, config_file=tmp_path / "absent.toml", overrides=sections)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)
