"""Property-based run of the whole OpenAPI document against a live server (schemathesis v4).

`parley serve` runs in a subprocess on a fresh database, with an admin made by
`parley users create --admin` (the CLI path of the first admin). Schemathesis loads the document
from the server, and for every operation Hypothesis generates valid (positive) and invalid
(negative) requests, sent with the admin's bearer token. Every response must pass schemathesis'
conformance checks (documented status, content type, body schema, headers); none may be a 5xx.

A plain (non-async) test: schemathesis and Hypothesis drive `requests` synchronously, which does
not mix with pytest-trio's loop, so the server lives in its own process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import requests
import schemathesis
import trio
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from parley.config import PROJECT_ROOT
from parley.service import RunningServer
from tests.conftest import TEST_JWT_SECRET, TEST_OPERATOR_TOKEN

if TYPE_CHECKING:
    from collections.abc import Iterator

POSITIVE_EXAMPLES = 15
NEGATIVE_EXAMPLES = 8
ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "schemathesis admin password"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


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


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = _environment(database_url, tmp_path, port)
    parley = [sys.executable, "-m", "parley"]
    created = subprocess.run(
        [
            *parley,
            "users",
            "create",
            "--admin",
            "--email",
            ADMIN_EMAIL,
            "--username",
            "root",
            "--password",
            ADMIN_PASSWORD,
        ],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    assert "created admin root" in created.stdout
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [*parley, "--log-level", "WARNING", "serve"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
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
        log.close()
        server_log = (tmp_path / "server.log").read_text()
        assert "Traceback" not in server_log, server_log


class AdminAuth:
    """The admin's bearer header; signs in again when a generated request revoked it."""

    def __init__(self, base_url: str, session: requests.Session) -> None:
        self._base_url = base_url
        self._session = session
        self.headers: dict[str, str] = {}
        self.logins = 0
        self.login()

    def login(self) -> None:
        response = self._session.post(
            f"{self._base_url}/api/auth/login",
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        self.logins += 1

    def after(self, response: Any) -> None:
        if response.status_code == 401 and b"revoked" in response.content:
            self.login()


def test_generated_requests_conform_to_the_openapi_document(live_server: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server}/api/openapi.json")
    session = requests.Session()
    auth = AdminAuth(live_server, session)
    statuses: Counter[int] = Counter()
    per_operation: Counter[str] = Counter()
    failures: list[str] = []
    started = time.monotonic()

    def exercise(operation: Any, mode: GenerationMode, examples: int) -> None:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(base_url=live_server, session=session, headers=auth.headers)
            statuses[response.status_code] += 1
            per_operation[operation.label] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as exc:  # collected, reported below
                failures.append(
                    f"{operation.label} [{mode}] {case.method} {case.formatted_path}"
                    f" body={case.body!r:.200} -> {response.status_code}: {exc}"
                )
            auth.after(response)
            if operation.label == "POST /api/auth/logout_all" and response.status_code == 204:
                auth.login()

        run()

    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself must be valid
        operations.append(result.ok())
    for operation in operations:
        exercise(operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
        exercise(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)
    elapsed = time.monotonic() - started
    total = sum(statuses.values())
    summary = (
        f"schemathesis: {total} requests over {len(operations)} operations in {elapsed:.1f}s; "
        f"statuses {dict(sorted(statuses.items()))}; {auth.logins} admin logins; "
        f"{len(failures)} failures"
    )
    print(summary)
    (Path(os.environ.get("PARLEY_SCHEMATHESIS_REPORT", "/dev/null"))).write_text(summary + "\n")
    assert not failures, "\n\n".join(failures[:40])
    assert total >= 300
    assert len(per_operation) == len(operations)  # every operation was exercised
    assert not any(status >= 500 for status in statuses)


async def test_keep_alive_survives_an_answer_sent_before_the_body_arrived(
    server: RunningServer,
) -> None:
    """Found by the run above: a response sent before the request body arrived (404 from routing,
    401 from the role check) used to stall the next request on the same keep-alive connection.

    The body is sent after the headers in a segment of its own, once the server (in this process)
    has read the head and every task of this run waits: the moment a 404 used to go out early.
    """
    host, _, port = server.base_url.removeprefix("http://").rpartition(":")
    body = b'{"banned": false}'
    head = (
        b"PATCH /api/admin/users/not-a-uuid HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(head)
        await trio.testing.wait_all_tasks_blocked()
        await stream.send_all(body)
        assert (await _status_line(stream)).startswith(b"HTTP/1.1 404")
        await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _status_line(stream)).startswith(b"HTTP/1.1 200")


async def _status_line(stream: trio.SocketStream) -> bytes:
    """The status line of the next response (its body is skipped by Content-Length)."""
    data = b""
    with trio.fail_after(3):
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += await stream.receive_some(65536)
    return head.split(b"\r\n")[0]
