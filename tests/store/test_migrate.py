"""Migrations: applied once, in order, recorded, and safe to run concurrently."""

from __future__ import annotations

import asyncio

import asyncpg

from parley.store.migrate import apply_migrations, available_migrations
from tests.conftest import _admin, with_database


def test_migrations_are_ordered_and_numbered() -> None:
    versions = [m.version for m in available_migrations()]
    assert versions == sorted(versions)
    assert versions[0].startswith("0001_")


def test_concurrent_migrations_apply_each_file_exactly_once(postgres_dsn: str) -> None:
    name = "parley_migrate_probe"
    asyncio.run(_admin(postgres_dsn, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"))
    dsn = with_database(postgres_dsn, name)

    async def run_three() -> list[list[str]]:
        return list(await asyncio.gather(*(apply_migrations(dsn) for _ in range(3))))

    try:
        results = asyncio.run(run_three())
        applied = [version for result in results for version in result]
        assert sorted(applied) == [m.version for m in available_migrations()]
        assert asyncio.run(apply_migrations(dsn)) == []

        async def recorded() -> int:
            conn = await asyncpg.connect(dsn)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM schema_migrations"))
            finally:
                await conn.close()

        assert asyncio.run(recorded()) == len(available_migrations())
    finally:
        asyncio.run(_admin(postgres_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
