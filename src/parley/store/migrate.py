"""Schema migrations: ordered `migrations/NNNN_name.sql` files, each applied once, in a transaction.

Concurrent starters (two `parley serve`, a test session) are serialised by a PostgreSQL advisory
lock,
and `schema_migrations` records what ran. Files are append-only: a change to the schema is a new
file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# An arbitrary constant that names "Parley's migrations" among advisory locks.
_MIGRATION_LOCK_KEY = 0x7061726C6579


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str


def available_migrations() -> list[Migration]:
    folder = resources.files("parley.store") / "migrations"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [Migration(entry.name.removesuffix(".sql"), entry.read_text()) for entry in files]


async def apply_migrations(dsn: str) -> list[str]:
    """Apply every pending migration (asyncio side); returns the versions applied now."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {
                row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")
            }
            applied = []
            for migration in available_migrations():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", migration.version
                    )
                # DEBUG: the callers report the versions applied in one line (or print them).
                log.debug("applied migration %s", migration.version)
                applied.append(migration.version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)
    finally:
        await conn.close()
