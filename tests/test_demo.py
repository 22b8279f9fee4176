"""`parley demo` (and `make demo`): a fresh database gets a browsable marketplace and chat, and
the accounts of every role are printed once, with passwords that sign in."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from parley.config import PROJECT_ROOT
from tests.conftest import TEST_JWT_SECRET

ACCOUNT_LINE = re.compile(r"^\s+(admin|moderator|registered)\s+(\S+@demo\.example\.com)\s+(\S+)$")


def _env(database_url: str, tmp_path: Path, port: int = 0) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PARLEY_ENV": "dev",
        "PARLEY_CONFIG": str(tmp_path / "absent.toml"),
        "PARLEY_DATA_DIR": str(tmp_path),
        "PARLEY_AUTH_JWT_SECRET": TEST_JWT_SECRET,
        "PARLEY_AUTH_ARGON2_MEMORY_KIB": "1024",
        "PARLEY_AUTH_ARGON2_TIME_COST": "1",
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", "--log-level", "WARNING", "demo", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            name: await conn.fetchval(query)
            for name, query in {
                "listings": "SELECT count(*) FROM listings",
                "sold": "SELECT count(*) FROM listings WHERE status = 'sold'",
                "hidden": "SELECT count(*) FROM listings WHERE hidden_at IS NOT NULL",
                "makes": "SELECT count(DISTINCT make) FROM listings",
                "years": "SELECT count(DISTINCT year) FROM listings",
                "replies": "SELECT count(*) FROM listing_replies",
                "conversations": "SELECT count(*) FROM conversations",
                "messages": "SELECT count(*) FROM messages",
                "audit": "SELECT count(*) FROM audit_log WHERE action = 'listing.hide'",
            }.items()
        }
    finally:
        await conn.close()


def test_demo_seeds_a_marketplace_once_and_prints_the_accounts(
    database_url: str, tmp_path: Path
) -> None:
    env = _env(database_url, tmp_path)
    first = _demo(env, "--no-serve")
    assert first.returncode == 0, first.stderr
    accounts = [m.groups() for m in map(ACCOUNT_LINE.match, first.stdout.splitlines()) if m]
    assert {role for role, _, _ in accounts} == {"admin", "moderator", "registered"}
    assert len(accounts) == 11
    counts = asyncio.run(_counts(database_url))
    assert counts["listings"] == 300
    assert counts["makes"] >= 10 and counts["years"] >= 15
    assert counts["sold"] > 0 and counts["hidden"] == 1 and counts["audit"] == 1
    assert counts["replies"] >= 40 and counts["conversations"] >= 4 and counts["messages"] >= 8

    again = _demo(env, "--no-serve")
    assert again.returncode == 0, again.stderr
    assert "in this database already" in again.stdout
    assert not any(map(ACCOUNT_LINE.match, again.stdout.splitlines()))
    assert asyncio.run(_counts(database_url)) == counts


def test_demo_serves_what_it_seeded_and_the_printed_passwords_sign_in(
    database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "parley", "--log-level", "WARNING", "demo"],
        env=_env(database_url, tmp_path, port),
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while not any("Ctrl-C" in line for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        accounts = [m.groups() for m in map(ACCOUNT_LINE.match, lines) if m]
        role, email, password = next(a for a in accounts if a[0] == "moderator")
        base = f"http://127.0.0.1:{port}"
        login = httpx.post(f"{base}/api/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        assert login.json()["user"]["role"] == role
        page = httpx.get(f"{base}/api/listings", params={"make": "toyota", "sort": "price_asc"})
        assert page.status_code == 200
        prices = [x["price_cents"] for x in page.json()["data"]]
        assert prices and prices == sorted(prices)
        token = {"Authorization": f"Bearer {login.json()['access_token']}"}
        audit = httpx.get(f"{base}/api/admin/audit", headers=token).json()["data"]
        assert [e["action"] for e in audit] == ["listing.hide"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == 0
