"""A Redis server for the cluster tests: the one at `PARLEY_TEST_REDIS_URL` if set, else a
`redis-server` of this machine started on a free port (Debian/Ubuntu: `apt-get install
redis-server`; the tests that need it are skipped, saying so, when there is none)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service.processes import STARTUP_SECONDS, free_port, wait_for


@dataclass(frozen=True)
class RedisServer:
    url: str
    port: int


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
            probe.sendall(b"PING\r\n")
            return probe.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    url = os.environ.get("PARLEY_TEST_REDIS_URL")
    if url:
        yield RedisServer(url, 0)
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH (apt-get install redis-server)")
    port = free_port()
    directory: Path = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _answers(port), STARTUP_SECONDS, "redis-server answers PING")
        yield RedisServer(f"redis://127.0.0.1:{port}/0", port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
