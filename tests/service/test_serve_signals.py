"""`make serve` never leaves PostgreSQL behind: repeated signals, signals during the first start,
and a `kill -9` of Parley.

The process group of `make serve` gets each signal twice: make passes SIGTERM on to Parley, which
got it from the group already. A second one during shutdown used to end Parley with the signal's
default action, before it stopped the embedded server. A Parley killed with SIGKILL leaves its
postgres running (pg_ctl starts it in a session of its own). The next `make serve` on that data
dir must take the orphan over, and must still stop PostgreSQL at its end. A signal during the
first start, while initdb runs, must reach Parley alone: it once killed initdb's postgres.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tests.service.processes import (
    SHUTDOWN_SECONDS,
    MakeServe,
    free_port,
    initdb_in_single_user_mode,
    postgres_processes,
    postmasters,
    scratch_directory,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="checks the embedded database"
)

SIGNAL_GAP_SECONDS = 0.1
"""The gap between the two signals of the slow drill, as the issue reported it."""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir of the test's own; any postgres left in it is killed after the assertions."""
    with scratch_directory() as scratch:
        yield scratch / "data"


class Start(Protocol):
    def __call__(self, *, healthy: bool = True) -> MakeServe: ...


@pytest.fixture
def start(data_dir: Path, tmp_path: Path) -> Iterator[Start]:
    """Starts `make serve` on the test's data dir and a free port; waits until it is healthy and
    runs exactly one postmaster, unless told not to wait."""
    started: list[MakeServe] = []

    def start_one(*, healthy: bool = True) -> MakeServe:
        serve = MakeServe(data_dir, free_port(), tmp_path / f"serve-{len(started)}.log")
        started.append(serve)
        if healthy:
            serve.wait_healthy()
            assert len(postmasters(data_dir / "pgdata")) == 1, "exactly one postmaster"
        return serve

    yield start_one
    for serve in started:
        serve.kill()  # whatever a failed test left of its group (Parley can outlive make)


def stopped_cleanly(serve: MakeServe, data_dir: Path) -> None:
    serve.wait_gone()
    log = serve.log()
    assert "Parley stopped" in log, log
    assert "embedded PostgreSQL stopped" in log, log
    assert "Traceback" not in log, log
    assert postgres_processes(data_dir / "pgdata") == [], "no postgres process may be left"


def killed(serve: MakeServe, data_dir: Path) -> None:
    """`kill -9` of Parley: its postgres outlives it."""
    running = postmasters(data_dir / "pgdata")
    serve.parley().kill()
    serve.wait_gone()
    assert postmasters(data_dir / "pgdata") == running


def test_a_repeated_stop_signal_and_a_killed_parley_leave_no_postgres_behind(
    start: Start, data_dir: Path
) -> None:
    serve = start()
    serve.signal_group(signal.SIGTERM)
    # Each further signal once the log shows the shutdown got that far (or Parley is gone).
    wait_for(
        lambda: "shutting down" in serve.log() or serve.make.poll() is not None,
        SHUTDOWN_SECONDS,
        "Parley starts shutting down",
    )
    serve.signal_group(signal.SIGTERM)
    wait_for(
        lambda: "stopping embedded PostgreSQL" in serve.log() or serve.make.poll() is not None,
        SHUTDOWN_SECONDS,
        "Parley stops the embedded PostgreSQL",
    )
    serve.signal_group(signal.SIGINT)
    stopped_cleanly(serve, data_dir)

    killed(start(), data_dir)
    serve = start()
    serve.signal_group(signal.SIGTERM)
    stopped_cleanly(serve, data_dir)


def test_a_stop_signal_while_postgresql_starts_stops_it_once_started(
    start: Start, data_dir: Path
) -> None:
    serve = start(healthy=False)
    initdb_in_single_user_mode(serve.parley())
    # In make's process group, this SIGTERM killed initdb's postgres, and the start failed.
    serve.signal_group(signal.SIGTERM)
    stopped_cleanly(serve, data_dir)

    serve = start()  # initdb was not cut short: the data dir is whole
    serve.signal_group(signal.SIGTERM)
    stopped_cleanly(serve, data_dir)


def test_a_start_that_fails_once_a_stop_was_asked_for_ends_cleanly_and_leaves_a_usable_data_dir(
    start: Start, data_dir: Path
) -> None:
    serve = start(healthy=False)
    initdb = initdb_in_single_user_mode(serve.parley())
    initdb.suspend()  # so that it is still half way when it is killed below
    serve.signal_group(signal.SIGTERM)
    wait_for(
        lambda: "received SIGTERM: shutting down" in serve.log(),
        SHUTDOWN_SECONDS,
        "Parley receives the SIGTERM",
    )
    initdb.kill()
    serve.wait_gone()
    log = serve.log()
    assert "Parley stopped" in log, log
    assert "Traceback" not in log, log
    assert postgres_processes(data_dir / "pgdata") == [], "no postgres process may be left"
    assert list(data_dir.glob("pgdata.initdb-*")) == [], "initdb's half-made cluster is gone"

    serve = start()  # the half-made data directory is not taken for a whole one
    serve.signal_group(signal.SIGTERM)
    stopped_cleanly(serve, data_dir)


# The drill first (10 times SIGTERM twice, 100 ms apart; 3 times kill -9 and a new start),
# then Ctrl-C twice and SIGINT followed by SIGTERM, with kill -9s in between: 20 starts in all.
DRILL = (
    ["sigterm twice"] * 10
    + ["kill -9"] * 3
    + ["sigterm twice", "sigint twice", "kill -9", "sigint, sigterm", "kill -9", "sigint twice"]
    + ["sigterm twice"]
)
SIGNALS = {
    "sigterm twice": (signal.SIGTERM, signal.SIGTERM),
    "sigint twice": (signal.SIGINT, signal.SIGINT),
    "sigint, sigterm": (signal.SIGINT, signal.SIGTERM),
}


@pytest.mark.slow
def test_twenty_serve_cycles_with_repeated_signals_and_kill_9_leave_no_postgres_behind(
    start: Start, data_dir: Path
) -> None:
    for step in DRILL:
        serve = start()
        if step == "kill -9":
            killed(serve, data_dir)
            continue
        first, second = SIGNALS[step]
        serve.signal_group(first)
        time.sleep(SIGNAL_GAP_SECONDS)
        serve.signal_group(second)
        stopped_cleanly(serve, data_dir)
    assert postgres_processes(data_dir / "pgdata") == []
