"""The embedded PostgreSQL used when `DATABASE_URL` is unset: pgserver's bundled binaries.

There is one server per data directory. Every process that uses it holds it: a `parley serve`,
or a pytest session on `.parley/test-pgdata` (two `make test` at once share one). The last holder
to let go stops it. The kernel keeps track of the holders, not a file. Each holder keeps a shared
flock on `<pgdata>.holders`, and that lock goes away with the process however it ends, `kill -9`
included. So a holder is never counted once it is gone, and a reused pid is never mistaken for
it. (pgserver's own `PostgresServer` counted pids in `pgdata/.handle_pids.json`, a record that
goes stale: a killed holder's pid stayed in it, and no later stop ever stopped the server.)

pgserver supplies the binaries and its helpers (the `pgserver` user when run as root, the socket
directory, `postmaster.pid`); this module runs initdb and `pg_ctl start` itself, each in a session
of its own. Nothing of the server is then in Parley's process group, so the terminal's Ctrl-C and
a SIGTERM to `make serve`'s group reach only Parley, which stops the server in order. Blocking the
signals instead did not hold: initdb runs `sh` and `postgres`, and both unblock them. initdb works
in a directory of its own that becomes `pgdata` only once it has succeeded, so a `PG_VERSION` in
`pgdata` always means a whole cluster, and an initdb cut short leaves nothing the next start
would take for one.

Starts and stops of one data directory take turns under an exclusive flock on `<pgdata>.lock`.
Two processes starting at once therefore find one postmaster, and a stop never races a start. A
start that finds no holder but a running postgres (its Parley was killed) stops that orphan first
and then starts afresh, so the state the orphan was left in (ready, starting, stopping) does not
matter. A stop sends the fast-shutdown signal and, past `stop_timeout`, kills whatever is left,
so it is bounded. Both block (about a second each, initdb several), so callers run them in a
worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import psutil

from parley.config import DatabaseSettings

with warnings.catch_warnings():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); pgserver copes with that.
    warnings.simplefilter("ignore")
    from pgserver import utils as pgserver_utils
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.postgres_server import PostgresServer

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
"""How often a stop looks whether the postgres processes have exited."""

_SYSTEM_USER = "pgserver"
"""Run as root, the server runs as this user (pgserver's choice): postgres never runs as root."""

_OUTPUT_TAIL_CHARS = 4000
"""How much of a failed initdb's or pg_ctl's output a start error quotes."""


class EmbeddedPostgresError(RuntimeError):
    """The embedded server's processes outlived even SIGKILL (a process stuck in the kernel)."""


class EmbeddedStartError(RuntimeError):
    """The embedded server did not start; whatever the attempt left running has been stopped."""


@dataclass
class EmbeddedServer:
    """One holder's claim on the embedded server of `pgdata`; `stop_embedded` gives it up."""

    pgdata: Path
    stop_timeout: float
    holding: IO[bytes] | None
    """The open holders file this claim's shared flock is on; None once given up."""


def start_embedded(
    pgdata: Path,
    *,
    start_timeout: float = DatabaseSettings.embedded_start_seconds,
    stop_timeout: float = DatabaseSettings.embedded_stop_seconds,
) -> tuple[str, EmbeddedServer]:
    """Start the embedded server in `pgdata` or join the one running there for its holders.

    Returns its DSN and this holder's claim on it. Raises `EmbeddedStartError` when it could not
    be started; `pgdata` is then as usable for the next start as it was before.
    """
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata.resolve()
    with _turn(pgdata):
        holding = _holders_file(pgdata).open("ab")
        alone = _try_flock(holding, fcntl.LOCK_EX)
        try:
            if alone:
                _take_over(pgdata, stop_timeout)
            _remove_unfinished_initdbs(pgdata, stop_timeout)
            _clear_stale_pid_file(pgdata)
            dsn = _start_postgres(pgdata, start_timeout, stop_timeout)
            fcntl.flock(holding, fcntl.LOCK_SH)
        except BaseException as exc:
            # A failed start (pg_ctl timing out under load, say) may still have left a postmaster
            # running; with no other holder, nobody would ever stop it.
            if alone:
                _stop_postgres(pgdata, stop_timeout)
            holding.close()
            if isinstance(exc, Exception) and not isinstance(exc, EmbeddedStartError):
                raise EmbeddedStartError(f"embedded PostgreSQL in {pgdata}: {exc}") from exc
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


def restart_embedded(
    server: EmbeddedServer,
    mode: Literal["fast", "immediate"],
    *,
    start_timeout: float = DatabaseSettings.embedded_start_seconds,
) -> None:
    """`pg_ctl restart -m <mode>` on the held server, waiting until it accepts connections again.

    For fault drills and operators: `fast` ends every session cleanly, `immediate` as a crash
    does (the server recovers from its WAL on the way up). The server keeps its socket and options.
    """
    with _turn(server.pgdata):
        _run(
            "pg_ctl",
            *("-D", str(server.pgdata), "-w", "-t", str(math.ceil(start_timeout))),
            *("-m", mode, "-l", str(server.pgdata / "log"), "restart"),
            user=_system_user(),
            timeout=start_timeout,
        )


def pause_embedded(server: EmbeddedServer) -> None:
    """Stop the held server (a fast shutdown) without giving up the claim; `resume_embedded`
    starts it again on the same socket. For outage drills."""
    with _turn(server.pgdata):
        _stop_postgres(server.pgdata, server.stop_timeout)


def resume_embedded(
    server: EmbeddedServer, *, start_timeout: float = DatabaseSettings.embedded_start_seconds
) -> str:
    """Start the server `pause_embedded` stopped (a no-op when it runs); its DSN."""
    with _turn(server.pgdata):
        _clear_stale_pid_file(server.pgdata)
        return _start_postgres(server.pgdata, start_timeout, server.stop_timeout)


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
        "embedded PostgreSQL in %s outlived its holders; "
        "stopping it (postgres pids %s) before starting afresh",
        pgdata,
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


def _remove_unfinished_initdbs(pgdata: Path, stop_timeout: float) -> None:
    """Remove the work directories of initdbs that never finished (their Parley was killed).

    No initdb of this start is running: each runs within a start's turn, and this is ours.
    """
    for unfinished in pgdata.parent.glob(f"{pgdata.name}.initdb-*"):
        log.info("removing %s, what an initdb that never finished left", unfinished)
        _kill_postgres(unfinished, stop_timeout)
        shutil.rmtree(unfinished, ignore_errors=True)


def _start_postgres(pgdata: Path, start_timeout: float, stop_timeout: float) -> str:
    """initdb if `pgdata` holds no cluster yet, then `pg_ctl start` unless postgres runs; the DSN.

    As pgserver's `PostgresServer` does, but in sessions of their own (see the module's doc).
    """
    user = _system_user()
    if not (pgdata / "PG_VERSION").exists():
        _initdb(pgdata, user, start_timeout, stop_timeout)
    if not postgres_processes(pgdata):
        socket_dir = pgserver_utils.find_suitable_socket_dir(pgdata, PostgresServer.runtime_path)
        if user is not None:
            _give_to(pgdata, user)
            if socket_dir != pgdata:
                pgserver_utils.ensure_prefix_permissions(socket_dir)
                socket_dir.chmod(0o777)
        # -w: until the server accepts connections; -h "": no TCP, the Unix socket only.
        _run(
            "pg_ctl",
            *("-D", str(pgdata), "-w", "-t", str(math.ceil(start_timeout))),
            *("-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"),
            user=user,
            timeout=start_timeout,
        )
    info = pgserver_utils.PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or info.status != "ready":
        raise EmbeddedStartError(f"embedded PostgreSQL in {pgdata} is not ready: {info}")
    return str(info.get_uri())


def _system_user() -> str | None:
    """Run as root, `_SYSTEM_USER`, made able to run and read the binaries; else None.

    pgserver's own preparation, as `_give_to` is for a data directory.
    """
    if os.geteuid() != 0:
        return None
    pgserver_utils.ensure_user_exists(_SYSTEM_USER)
    pgserver_utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read = stat.S_IRGRP | stat.S_IROTH
    pgserver_utils.ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
    pgserver_utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    return _SYSTEM_USER


def _give_to(directory: Path, user: str) -> None:
    """Let `user` traverse the path to `directory` and own it, just before a binary needs it.

    Just before: a new pytest session closes /tmp/pytest-of-<user> again, for one.
    """
    pgserver_utils.ensure_prefix_permissions(directory)
    entry = pwd.getpwnam(user)
    os.chown(directory, entry.pw_uid, entry.pw_gid)


def _initdb(pgdata: Path, user: str | None, timeout: float, stop_timeout: float) -> None:
    """Make a new cluster in a work directory beside `pgdata`, then put it in `pgdata`'s place.

    `pgdata` has no PG_VERSION, so it holds no cluster, and whatever it holds goes.
    """
    work = Path(tempfile.mkdtemp(prefix=f"{pgdata.name}.initdb-", dir=pgdata.parent))
    try:
        if user is not None:
            _give_to(work, user)
        _run(
            "initdb",
            *("-D", str(work), "--auth=trust", "--auth-local=trust", "--encoding=utf8"),
            *("-U", "postgres"),
            user=user,
            timeout=timeout,
        )
        if any(pgdata.iterdir()):
            log.warning("removing %s's contents: no PG_VERSION, so no whole cluster", pgdata)
        shutil.rmtree(pgdata)
        work.rename(pgdata)
    except BaseException:
        # Any postgres initdb left running there; its cluster goes, so it needs no shutdown.
        _kill_postgres(work, stop_timeout)
        shutil.rmtree(work, ignore_errors=True)
        raise


def _run(binary: str, *arguments: str, user: str | None, timeout: float) -> None:
    """Run one of pgserver's binaries in a session of its own; its output goes into any error.

    The output goes to a file, not a pipe: pg_ctl's postmaster inherits the descriptors and would
    hold a pipe open for as long as it runs.
    """
    with tempfile.TemporaryFile("w+") as output:
        try:
            subprocess.run(
                [str(POSTGRES_BIN_PATH / binary), *arguments],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                user=user,
                start_new_session=True,
                timeout=timeout,
                check=True,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output.seek(0)
            raise EmbeddedStartError(
                f"{binary} failed ({exc}):\n{output.read()[-_OUTPUT_TAIL_CHARS:]}"
            ) from exc


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
    log.warning(
        "embedded PostgreSQL in %s did not stop within %ss; killing pids %s",
        pgdata,
        stop_timeout,
        sorted(process.pid for process in postgres_processes(pgdata)),
    )
    _kill_postgres(pgdata, stop_timeout)


def _kill_postgres(directory: Path, timeout: float) -> None:
    """SIGKILL every postgres process working in `directory`, and wait until they are gone."""
    for process in postgres_processes(directory):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    if not _wait_stopped(directory, timeout):
        raise EmbeddedPostgresError(
            f"postgres processes of {directory} survived SIGKILL: "
            f"{sorted(process.pid for process in postgres_processes(directory))}"
        )


def _wait_stopped(pgdata: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while postgres_processes(pgdata):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True
