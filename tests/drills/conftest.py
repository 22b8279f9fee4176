"""Fixtures of the reliability drills (docs/reliability.md): figures, a PostgreSQL of their own.

Every drill prints one `FIGURE <id> <name>=<value> target=<target>` line per figure; they are
collected here and printed together at the end of the run, so a run reads as a table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from parley.store.embedded import EmbeddedServer, start_embedded, stop_embedded
from parley.store.migrate import apply_migrations
from tests.conftest import _admin, with_database
from tests.drills.figures import printed_figures
from tests.service.processes import scratch_directory


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = printed_figures()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


class DrillPostgres:
    """An embedded PostgreSQL of the drill's own (it gets restarted and stopped) and a migrated
    database on it."""

    def __init__(self, server: EmbeddedServer, dsn: str) -> None:
        self.server = server
        self.dsn = dsn


@pytest.fixture
def drill_postgres() -> Iterator[DrillPostgres]:
    with scratch_directory() as root:
        maintenance, server = start_embedded(root / "pgdata")
        try:
            asyncio.run(_admin(maintenance, "CREATE DATABASE parley_drill"))
            dsn = with_database(maintenance, "parley_drill")
            asyncio.run(apply_migrations(dsn))
            yield DrillPostgres(server, dsn)
        finally:
            stop_embedded(server)
