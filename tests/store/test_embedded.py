"""The embedded PostgreSQL's holders: the last one to stop stops it, and nothing dead counts.

Each test has a data directory of its own and real postgres processes. Holders in other
processes are small Python processes that start the server, print its DSN and wait. A killed
one is what a `kill -9` of Parley or of a pytest session leaves behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from parley.store.embedded import start_embedded, stop_embedded
from tests.service.processes import (
    SHUTDOWN_SECONDS,
    STARTUP_SECONDS,
    initdb_in_single_user_mode,
    postgres_processes,
    postmasters,
    scratch_directory,
)

HOLDER = """
import json, sys
from pathlib import Path
from parley.store.embedded import start_embedded, stop_embedded
dsn, server = start_embedded(Path(sys.argv[1]))
print(json.dumps({"dsn": dsn}), flush=True)
sys.stdin.readline()
print(json.dumps({"stopped": stop_embedded(server)}), flush=True)
"""


class Holder:
    """Another process holding the embedded server of `pgdata` until told to stop."""

    def __init__(self, pgdata: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(pgdata)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ready(self) -> str:
        """Its DSN, once it has started (or joined) the server."""
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], STARTUP_SECONDS)
        line = self.process.stdout.readline() if readable else ""
        assert line, f"the holder did not start the server (exit code {self.process.poll()})"
        dsn: str = json.loads(line)["dsn"]
        return dsn

    def stop(self) -> bool:
        output, _ = self.process.communicate("\n", timeout=SHUTDOWN_SECONDS)
        stopped: bool = json.loads(output.splitlines()[-1])["stopped"]
        return stopped

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=SHUTDOWN_SECONDS)


@pytest.fixture
def pgdata() -> Iterator[Path]:
    """A data directory of the test's own; whatever runs in it is killed at the end."""
    with scratch_directory() as scratch:
        yield scratch / "pgdata"


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.process.poll() is None:
            holder.kill()


def answers(dsn: str) -> bool:
    async def query() -> bool:
        conn = await asyncpg.connect(dsn, timeout=30)
        try:
            return bool(await conn.fetchval("SELECT 1") == 1)
        finally:
            await conn.close()

    return asyncio.run(query())


def a_dead_pid() -> int:
    exited = subprocess.Popen(["true"])
    exited.wait()
    return exited.pid


def test_the_server_runs_until_the_last_of_two_holders_in_one_process_stops(
    pgdata: Path,
) -> None:
    _, first = start_embedded(pgdata)
    dsn, second = start_embedded(pgdata)
    running = postmasters(pgdata)
    assert len(running) == 1

    stopped = stop_embedded(first)
    assert postmasters(pgdata) == running, "the second holder still uses it"
    assert answers(dsn)
    assert stopped is False

    stopped = stop_embedded(second)
    assert postgres_processes(pgdata) == []
    assert stopped is True


@pytest.mark.parametrize("left_behind", ["a dead pid", "a truncated list"])
def test_what_a_killed_holder_left_in_pgservers_pid_list_does_not_stop_a_stop(
    pgdata: Path, left_behind: str
) -> None:
    _, server = start_embedded(pgdata)
    stop_embedded(server)
    recorded = pgdata / ".handle_pids.json"
    recorded.write_text(json.dumps([a_dead_pid()]) if left_behind == "a dead pid" else "[1")

    dsn, server = start_embedded(pgdata)
    assert answers(dsn)
    stopped = stop_embedded(server)
    assert postgres_processes(pgdata) == []
    assert stopped is True


def test_a_holder_killed_with_sigkill_no_longer_keeps_the_server_running(
    pgdata: Path, holders: list[Holder]
) -> None:
    holders.append(holder := Holder(pgdata))
    holder.ready()
    dsn, mine = start_embedded(pgdata)
    assert len(postmasters(pgdata)) == 1

    holder.kill()
    assert answers(dsn)
    stopped = stop_embedded(mine)
    assert postgres_processes(pgdata) == []
    assert stopped is True


def test_a_postgres_that_outlived_its_killed_holder_is_taken_over_by_the_next_start(
    pgdata: Path, holders: list[Holder]
) -> None:
    holders.append(holder := Holder(pgdata))
    holder.ready()
    holder.kill()
    assert len(postmasters(pgdata)) == 1, "postgres runs on after its holder was killed"

    dsn, server = start_embedded(pgdata)
    assert answers(dsn)
    assert len(postmasters(pgdata)) == 1
    stopped = stop_embedded(server)
    assert postgres_processes(pgdata) == []
    assert stopped is True


def test_a_stale_postmaster_pid_naming_a_live_process_does_not_stop_a_start(pgdata: Path) -> None:
    _, server = start_embedded(pgdata)
    pid_file = (pgdata / "postmaster.pid").read_text().splitlines()
    stop_embedded(server)
    # As a killed postmaster leaves it, its pid since taken by another process (this one).
    (pgdata / "postmaster.pid").write_text("\n".join([str(os.getpid()), *pid_file[1:]]) + "\n")

    dsn, server = start_embedded(pgdata)
    assert answers(dsn)
    stopped = stop_embedded(server)
    assert postgres_processes(pgdata) == []
    assert stopped is True


def test_two_processes_starting_at_once_share_one_server_until_the_last_one_stops(
    pgdata: Path, holders: list[Holder]
) -> None:
    holders.extend([first := Holder(pgdata), second := Holder(pgdata)])
    first.ready()
    dsn = second.ready()
    assert len(postmasters(pgdata)) == 1, "never two postmasters on one data directory"

    stopped = first.stop()
    assert answers(dsn), "the first to finish must not stop the server under the second"
    assert stopped is False
    stopped = second.stop()
    assert postgres_processes(pgdata) == []
    assert stopped is True


def test_an_initdb_killed_half_way_leaves_nothing_the_next_start_takes_for_a_cluster(
    pgdata: Path, holders: list[Holder]
) -> None:
    holders.append(holder := Holder(pgdata))
    initdb = initdb_in_single_user_mode(psutil.Process(holder.process.pid))
    # As a `kill -9` of the holder's process group leaves it, or a crash of the machine.
    initdb.kill()
    holder.kill()

    dsn, server = start_embedded(pgdata)
    assert answers(dsn)
    assert list(pgdata.parent.glob(f"{pgdata.name}.initdb-*")) == [], "the half-made one went"
    stopped = stop_embedded(server)
    assert postgres_processes(pgdata) == []
    assert stopped is True


def test_the_work_of_an_initdb_whose_holder_was_killed_is_never_taken_for_a_cluster(
    pgdata: Path, holders: list[Holder]
) -> None:
    holders.append(holder := Holder(pgdata))
    initdb_in_single_user_mode(psutil.Process(holder.process.pid))
    holder.kill()  # its initdb, in a session of its own, runs on

    dsn, server = start_embedded(pgdata)
    assert answers(dsn)
    assert list(pgdata.parent.glob(f"{pgdata.name}.initdb-*")) == [], "the unfinished one went"
    stopped = stop_embedded(server)
    assert postgres_processes(pgdata) == []
    assert stopped is True
