"""`parley serve` as an operator runs it: a real process, its own embedded PostgreSQL, SIGTERM.

This is the "two commands" promise under test: on an empty data dir the server initialises and
starts PostgreSQL, migrates, answers /health, and on SIGTERM shuts down in order within a bounded
time, leaving no postgres process behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

STARTUP_SECONDS = 60
SHUTDOWN_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def postgres_processes_under(data_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "postgres" in (process.info["name"] or "") and str(data_dir) in cmdline:
            found.append(process)
    return found


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "parley serve exited during start-up"
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                body: dict[str, object] = response.json()
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no healthy answer from {url} within {STARTUP_SECONDS}s")


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="checks the embedded database")
def test_serve_starts_on_an_embedded_database_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PARLEY_") and key != "DATABASE_URL"
    }
    env.update({"PORT": str(port), "PARLEY_DATA_DIR": str(data_dir)})
    process = subprocess.Popen(
        [sys.executable, "-m", "parley", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}/health", process)
        assert health["status"] == "ok"
        assert health["database"] == "ok"
        assert postgres_processes_under(data_dir), "the embedded PostgreSQL should be running"
        assert (data_dir / "jwt_secret").exists(), (
            "a development JWT secret is kept in the data dir"
        )

        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=SHUTDOWN_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = output.decode(errors="replace")
    assert process.returncode == 0, log
    assert "Parley stopped" in log
    assert postgres_processes_under(data_dir) == [], "no postgres process may be left behind"
