"""What `parley serve` writes, read from a real process: a few start-up lines of its own (version,
environment, database, where it listens), none of the libraries' narration, then one access line
per request with the query's parameter names but not their values."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
import pytest

from parley import __version__
from tests.service.processes import free_port, wait_healthy

if TYPE_CHECKING:
    from pathlib import Path

SHUTDOWN_SECONDS = 30
SECRET = "s3cret-value"
OWN_LINE = re.compile(r"^\S+ \S+ (INFO|WARNING) parley(\.[a-z_.]+)?: ")


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="runs the embedded database")
def test_serve_starts_quietly_and_logs_each_request_without_query_values(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PARLEY_") and key != "DATABASE_URL"
    }
    env.update({"PORT": str(port), "PARLEY_DATA_DIR": str(tmp_path / "data")})
    process = subprocess.Popen(
        [sys.executable, "-m", "parley", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_healthy(f"{base}/health", process)
        assert httpx.get(f"{base}/api/users?limit=1&token={SECRET}").status_code == 401
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=SHUTDOWN_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    lines = output.splitlines()
    assert re.match(
        rf"^\S+ \S+ INFO parley: Parley {re.escape(__version__)}, env dev, database: embedded "
        r"PostgreSQL",
        lines[0],
    ), output
    serving = next(n for n, line in enumerate(lines) if base in line)
    for line in lines[: serving + 1]:
        assert OWN_LINE.match(line), f"not one of Parley's start-up lines: {line!r}"
    assert output.count(base) == 1, output  # Hypercorn's "Running on" said it again, twice
    assert "initdb" not in output
    assert re.search(
        r" INFO parley\.access: 127\.0\.0\.1:\d+ GET /api/users\?limit&token 401 \d+\.\d ms$",
        output,
        re.MULTILINE,
    ), output
    assert SECRET not in output
    assert "Traceback" not in output
