"""The embedded PostgreSQL used when `DATABASE_URL` is unset: pgserver's bundled binaries.

There is one server per data directory. Every process that uses it holds it: a `parley serve`,
or a pytest session on `.parley/test-pgdata` (two `make test` at once share one). The last holder
to let go stops it. The kernel keeps track of the holders, not a file. Each holder keeps a shared
flock on `<pgdata>.holders`, and that lock goes away with the process however it ends, `kill -9`
included. So a holder is never counted once it is gone, and a reused pid is never mistaken for
it. pgserver's own refcount, the pids in `pgdata/.handle_pids.json`, is a record that does go
stale: a killed holder's pid stayed in it, and from then on every later last holder believed
another one was left and never stopped the server. So pgserver only starts the server here
(initdb, `pg_ctl start`, the socket directory); this module decides when it stops.

Starts and stops of one data directory take turns under an exclusive flock on `<pgdata>.lock`.
Two processes starting at once therefore find one postmaster, and a stop never races a start. A
start that finds no holder but a running postgres (its Parley was killed) stops that orphan first
and then starts afresh, so the state the orphan was left in (ready, starting, stopping) does not
matter. A stop sends the fast-shutdown signal and, past `stop_timeout`, kills whatever is left,
so it is bounded. Both block (about a second each), so callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import psutil

from parley.config import DatabaseSettings

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
"""How often a stop looks whether the postgres processes have exited."""


class EmbeddedPostgresError(RuntimeError):
    """The embedded server's processes outlived even SIGKILL (a process stuck in the kernel)."""


@dataclass
class EmbeddedServer:
    """One holder's claim on the embedded server of `pgdata`; `stop_embedded` gives it up."""

    pgdata: Path
    stop_timeout: float
    holding: IO[bytes] | None
    """The open holders file this claim's shared flock is on; None once given up."""


def start_embedded(
    pgdata: Path, *, stop_timeout: float = DatabaseSettings.embedded_stop_seconds
) -> tuple[str, EmbeddedServer]:
    """Start the embedded server in `pgdata` or join the one running there for its holders.

    Returns its DSN and this holder's claim on it.
    """
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata.resolve()
    with _turn(pgdata):
        holding = _holders_file(pgdata).open("ab")
        alone = _try_flock(holding, fcntl.LOCK_EX)
        try:
            if alone:
                _take_over(pgdata, stop_timeout)
            _clear_stale_pid_file(pgdata)
            _prune_recorded_pids(pgdata)
            dsn = str(_pgserver_start(pgdata).get_uri())
            fcntl.flock(holding, fcntl.LOCK_SH)
        except BaseException:
            # A failed start (pg_ctl timing out under load, say) may still have left a postmaster
            # running; with no other holder, nobody would ever stop it.
            if alone:
                _stop_postgres(pgdata, stop_timeout)
            holding.close()
            raise
    return dsn, EmbeddedServer(pgdata, stop_timeout, holding)


def stop_embedded(server: EmbeddedServer) -> bool:
    """Give up this claim and stop PostgreSQL if no other holder is left.

    Returns True when the server is no longer running, and False when other holders keep it
    running (or this claim was given up already).
    """
    if server.holding is None:
        return False
    with _turn(server.pgdata):
        server.holding.close()
        server.holding = None
        with _holders_file(server.pgdata).open("ab") as probe:
            if not _try_flock(probe, fcntl.LOCK_EX):
                return False
            _stop_postgres(server.pgdata, server.stop_timeout)
            return True


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """The live postgres processes of `pgdata`, the postmaster and its children.

    The postmaster changes into its data directory, and its children inherit that directory.
    Each comes with `info["ppid"]`, read at the same time.
    """
    found = []
    for process in psutil.process_iter(["name", "ppid"]):
        if process.info["name"] != "postgres":
            continue
        try:
            if Path(process.cwd()) == pgdata and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@contextlib.contextmanager
def _turn(pgdata: Path) -> Iterator[None]:
    """This data directory's start/stop turn: an exclusive flock held for the block."""
    with pgdata.with_name(f"{pgdata.name}.lock").open("ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _holders_file(pgdata: Path) -> Path:
    return pgdata.with_name(f"{pgdata.name}.holders")


def _try_flock(file: IO[bytes], operation: int) -> bool:
    try:
        fcntl.flock(file, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _take_over(pgdata: Path, stop_timeout: float) -> None:
    """No process holds the server: any postgres still running in `pgdata` is an orphan."""
    orphans = postgres_processes(pgdata)
    if not orphans:
        return
    log.warning(
        "embedded PostgreSQL in %s outlived its holders (pids recorded by pgserver: %s); "
        "stopping it (postgres pids %s) before starting afresh",
        pgdata,
        _recorded_pids(pgdata),
        sorted(process.pid for process in orphans),
    )
    _stop_postgres(pgdata, stop_timeout)


def _clear_stale_pid_file(pgdata: Path) -> None:
    """Remove a `postmaster.pid` that no running postgres of `pgdata` wrote.

    A killed postmaster leaves it behind, and the pid in it may belong to another process by
    now. pgserver would take that process for the server, and postgres would refuse to start.
    """
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists() and not postgres_processes(pgdata):
        log.info("removing the stale %s", pid_file)
        pid_file.unlink()


def _recorded_pids(pgdata: Path) -> list[int]:
    try:
        recorded = json.loads((pgdata / ".handle_pids.json").read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(recorded, list):
        return []
    return [pid for pid in recorded if isinstance(pid, int)]


def _prune_recorded_pids(pgdata: Path) -> None:
    """Keep pgserver's pid list valid and free of dead pids: pgserver reads it when it starts.

    The list decides nothing here. But a holder killed while it wrote the list leaves the file
    truncated, and pgserver would then fail to start.
    """
    path = pgdata / ".handle_pids.json"
    if not path.exists():
        return
    live = [pid for pid in _recorded_pids(pgdata) if psutil.pid_exists(pid)]
    replacement = path.with_name(f"{path.name}.new")
    replacement.write_text(json.dumps(live))
    os.replace(replacement, path)


def _pgserver_start(pgdata: Path) -> PostgresServer:
    """pgserver's start: initdb if the directory is new, then `pg_ctl start` unless it runs.

    This builds a new pgserver handle each time. `get_server` would return the handle cached in
    this process, which never starts the server again once a stop has stopped it.
    cleanup_mode=None: pgserver never stops the server itself, `stop_embedded` does.
    """
    # initdb and pg_ctl run in Parley's process group, so the terminal's Ctrl-C or a SIGTERM to
    # `make serve`'s group would reach them too and could kill them halfway: a data directory
    # half made, or a postmaster nobody holds. A blocked signal stays blocked across fork and
    # exec, so they never see it; it goes to Parley's main thread, which stops what was started.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); pgserver copes
            # with that.
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import PostgresServer

            return PostgresServer(pgdata, cleanup_mode=None)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _stop_postgres(pgdata: Path, stop_timeout: float) -> None:
    """Stop every postgres process of `pgdata`: a fast shutdown, then SIGKILL past the timeout."""
    processes = postgres_processes(pgdata)
    if not processes:
        return
    pids = {process.pid for process in processes}
    for process in processes:
        if process.info["ppid"] not in pids:
            # The postmaster, or a child whose postmaster is gone. SIGINT is PostgreSQL's fast
            # shutdown, which is what `pg_ctl stop -m fast` sends.
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGINT)
    if _wait_stopped(pgdata, stop_timeout):
        return
    left = postgres_processes(pgdata)
    log.warning(
        "embedded PostgreSQL in %s did not stop within %ss; killing pids %s",
        pgdata,
        stop_timeout,
        sorted(process.pid for process in left),
    )
    for process in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    if not _wait_stopped(pgdata, stop_timeout):
        raise EmbeddedPostgresError(
            f"postgres processes of {pgdata} survived SIGKILL: "
            f"{sorted(process.pid for process in postgres_processes(pgdata))}"
        )


def _wait_stopped(pgdata: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while postgres_processes(pgdata):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True
