"""`parley serve` as an operator runs it: a real process, its own embedded PostgreSQL, SIGTERM.

This is the "two commands" promise under test: on an empty data dir the server initialises and
starts PostgreSQL, migrates, answers /health, and on SIGTERM shuts down in order within a bounded
time, leaving no postgres process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.service.processes import free_port, wait_healthy

SHUTDOWN_SECONDS = 30


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
