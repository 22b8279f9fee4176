"""Real processes for the service tests: `make serve` in its own process group, and the postgres
processes of one data directory.

Every wait polls a condition against a generous deadline; nothing asserts how long anything took.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from parley.config import PROJECT_ROOT

STARTUP_SECONDS = 90
SHUTDOWN_SECONDS = 60
POLL_SECONDS = 0.05


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        time.sleep(POLL_SECONDS)


def wait_healthy(
    url: str, process: subprocess.Popen[Any], *, log: Callable[[], str] = str
) -> dict[str, object]:
    """Wait until `url` (a /health) answers 200 with the database ok; its body. `process` must
    stay up meanwhile (`log()` says what it printed if it does not)."""
    body: dict[str, object] = {}

    def healthy() -> bool:
        nonlocal body
        assert process.poll() is None, f"parley serve exited during start-up:\n{log()}"
        try:
            response = httpx.get(url, timeout=2)
        except httpx.TransportError:
            return False
        if response.status_code != 200 or response.json()["database"] != "ok":
            return False
        body = response.json()
        return True

    wait_for(healthy, STARTUP_SECONDS, f"{url} answers 200 with the database ok")
    return body


def alive(process: psutil.Process) -> bool:
    """Running, and not a zombie: an orphan's zombie waits here for pid 1 to reap it."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _postgres_processes_in(wanted: Callable[[Path], bool]) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "ppid"]):
        if process.info["name"] != "postgres":
            continue
        try:
            if wanted(Path(process.cwd())) and alive(process):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """Every live postgres process of `pgdata`: the postmaster and its children all run in it."""
    pgdata = pgdata.resolve()
    return _postgres_processes_in(lambda cwd: cwd == pgdata)


@contextlib.contextmanager
def scratch_directory() -> Iterator[Path]:
    """A new directory for data dirs; at the end any postgres left in it is killed, then it goes.

    It is not under pytest's tmp_path. Run as root, pgserver runs postgres as the user
    `pgserver`, which must traverse the path: pgserver opens up the parents' modes for it, but
    each new pytest session (another `make test`, say) closes /tmp/pytest-of-<user> again, and a
    postgres starting at that moment fails.
    """
    path = Path(tempfile.mkdtemp(prefix="parley-test-")).resolve()
    try:
        yield path
    finally:
        leftovers = _postgres_processes_in(lambda cwd: cwd.is_relative_to(path))
        for process in leftovers:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(leftovers, timeout=SHUTDOWN_SECONDS)
        shutil.rmtree(path, ignore_errors=True)


def postmasters(pgdata: Path) -> list[psutil.Process]:
    """The postgres processes of `pgdata` whose parent is not one of them."""
    processes = postgres_processes(pgdata)
    pids = {process.pid for process in processes}
    return [process for process in processes if process.info["ppid"] not in pids]


def initdb_in_single_user_mode(parent: psutil.Process) -> psutil.Process:
    """`parent`'s initdb, once it runs postgres in single-user mode (its longest step, seconds).

    That postgres unblocks SIGINT and SIGTERM itself, whatever mask it inherited.
    """
    found: list[psutil.Process] = []

    def running() -> bool:
        with contextlib.suppress(psutil.NoSuchProcess):
            found[:] = [
                process
                for process in parent.children(recursive=True)
                if process.name() == "initdb"
                and any("--single" in child.cmdline() for child in process.children(recursive=True))
            ]
        return bool(found)

    wait_for(running, STARTUP_SECONDS, "initdb runs postgres in single-user mode")
    return found[0]


def serve_environment(data_dir: Path, port: int) -> dict[str, str]:
    """The caller's environment without Parley's settings, an outer make's or a DATABASE_URL."""
    dropped = {"DATABASE_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PARLEY_") and key not in dropped
    }
    env.update({"PORT": str(port), "PARLEY_DATA_DIR": str(data_dir)})
    return env


class MakeServe:
    """`make serve` as a user runs it, in a process group of its own, its output in a file."""

    def __init__(self, data_dir: Path, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.make = subprocess.Popen(
            ["make", "--no-print-directory", "serve"],
            cwd=PROJECT_ROOT,
            env=serve_environment(data_dir, port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.group = self.make.pid
        self.gone = False
        """Whether the whole group was seen to have exited."""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def members(self) -> list[psutil.Process]:
        """Live processes of the group: make and Parley (initdb, pg_ctl and postgres run in
        sessions of their own)."""
        found = []
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) == self.group and alive(process):
                    found.append(process)
            except (ProcessLookupError, psutil.NoSuchProcess):
                continue
        return found

    def parley(self) -> psutil.Process:
        """The Parley process make runs (its only child)."""
        children: list[psutil.Process] = []

        def started() -> bool:
            children[:] = psutil.Process(self.make.pid).children()
            return bool(children)

        wait_for(started, STARTUP_SECONDS, "make starts parley serve")
        return children[0]

    def wait_healthy(self) -> None:
        wait_healthy(f"http://127.0.0.1:{self.port}/health", self.make, log=self.log)

    def signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # everything in it has exited already
            os.killpg(self.group, signum)

    def wait_gone(self) -> None:
        """Until make and everything else of its group has exited."""
        try:
            self.make.wait(timeout=SHUTDOWN_SECONDS)
        finally:
            self._log.close()
        wait_for(lambda: not self.members(), SHUTDOWN_SECONDS, "the process group has exited")
        self.gone = True

    def kill(self) -> None:
        """Whatever is left of the group, for a test's clean-up."""
        if not self.gone:  # else its number may have been reused for somebody else's group
            self.signal_group(signal.SIGKILL)
        self.make.wait(timeout=SHUTDOWN_SECONDS)
        self._log.close()
