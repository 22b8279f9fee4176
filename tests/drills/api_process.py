"""`parley serve` in a subprocess for the schemathesis runs (drill F1), and the users they act as.

Schemathesis and Hypothesis drive `requests` synchronously, which does not mix with pytest-trio's
loop, so the server lives in its own process, on a fresh database, with an admin made by
`parley users create --admin` (the CLI path of the first admin). The other identities register
through the API, as a user would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import requests

from parley.config import PROJECT_ROOT
from tests.conftest import TEST_JWT_SECRET, TEST_OPERATOR_TOKEN

ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "schemathesis admin password"
PASSWORD = "schemathesis user password"
TIMEOUT = 30
"""Seconds any one request may take before the run fails (a hang is a defect too)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(database_url: str, data_dir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PARLEY_ENV": "test",
        "PARLEY_CONFIG": str(data_dir / "absent.toml"),
        "PARLEY_DATA_DIR": str(data_dir),
        "PARLEY_AUTH_JWT_SECRET": TEST_JWT_SECRET,
        "PARLEY_AUTH_ARGON2_MEMORY_KIB": "1024",
        "PARLEY_AUTH_ARGON2_TIME_COST": "1",
        # Generated requests would trip the auth throttles and turn most answers into 429s.
        "PARLEY_AUTH_PER_IP_REQUESTS_PER_HOUR": "1000000",
        "PARLEY_AUTH_LOGIN_FAILURES_PER_ACCOUNT": "1000000",
        "PARLEY_DEBUG_OPERATOR_TOKEN": TEST_OPERATOR_TOKEN,
    }


@contextmanager
def parley_process(database_url: str, tmp_path: Path) -> Iterator[str]:
    """Serve Parley on `database_url` in a subprocess, with its first admin; yields the base URL.

    The server's log must hold no traceback when it stops: an exception caught by the error
    handler still answers, but it is a defect all the same.
    """
    port = _free_port()
    env = _environment(database_url, tmp_path, port)
    parley = [sys.executable, "-m", "parley"]
    created = subprocess.run(
        [*parley, "users", "create", "--admin", "--email", ADMIN_EMAIL, "--username", "root",
         "--password", ADMIN_PASSWORD],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "created admin root" in created.stdout
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*parley, "--log-level", "WARNING", "serve"],
            env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{base_url}/api/openapi.json", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    server_log = log_path.read_text()
    assert "Traceback" not in server_log, server_log


class Identity:
    """One user the run acts as: its own HTTP session (cookies never cross identities) and bearer
    header, signed in again when a generated request revoked its tokens (logout_all)."""

    def __init__(self, name: str, base_url: str, email: str, password: str) -> None:
        self.name = name
        self.base_url = base_url
        self.email = email
        self.password = password
        self.session = requests.Session()
        self.headers: dict[str, str] = {}
        self.user_id = ""
        self.logins = 0

    def login(self) -> None:
        response = self.session.post(
            f"{self.base_url}/api/auth/login",
            json={"email": self.email, "password": self.password},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text
        self._signed_in(response.json())

    def register(self, username: str) -> None:
        response = self.session.post(
            f"{self.base_url}/api/auth/register",
            json={"email": self.email, "password": self.password, "username": username},
            timeout=TIMEOUT,
        )
        assert response.status_code == 201, response.text
        self._signed_in(response.json())

    def _signed_in(self, session: dict[str, Any]) -> None:
        self.headers = {"Authorization": f"Bearer {session['access_token']}"}
        self.user_id = session["user"]["id"]
        self.logins += 1

    def after(self, operation: str, response: requests.Response) -> None:
        """Sign in again if `response` says this identity's tokens were revoked."""
        revoked = response.status_code == 401 and b"revoked" in response.content
        if revoked or (operation == "POST /api/auth/logout_all" and response.status_code == 204):
            self.login()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """A plain API call of the set-up: must succeed; its JSON (None for 204)."""
        response = self.session.request(
            method, f"{self.base_url}{path}", json=body, headers=self.headers, timeout=TIMEOUT
        )
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return None if response.status_code == 204 else response.json()


def admin(base_url: str) -> Identity:
    identity = Identity("admin", base_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    identity.login()
    return identity


def registered(base_url: str, name: str, canary: str) -> Identity:
    """A newly registered user; its e-mail address carries `canary` (only it and admins may read
    it)."""
    identity = Identity(name, base_url, f"{name}-{canary}@example.com", PASSWORD)
    identity.register(f"{name}{uuid.uuid4().hex[:8]}")
    return identity
