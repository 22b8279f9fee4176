"""The `parley` command as an operator runs it: a real process, its exit status and its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_JWT_SECRET

COMMAND_SECONDS = 60
PARLEY = (sys.executable, "-m", "parley")


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without Parley's names, plus a test configuration."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PARLEY_") and key != "DATABASE_URL"
    }
    env.update(
        PARLEY_ENV="test",
        PARLEY_CONFIG=str(tmp_path / "absent.toml"),
        PARLEY_DATA_DIR=str(tmp_path / "data"),
        PARLEY_AUTH_JWT_SECRET=TEST_JWT_SECRET,
        **extra,
    )
    return env


def test_users_create_without_a_terminal_or_password_is_a_usage_error(tmp_path: Path) -> None:
    # stdin is not a terminal, and the new session has no controlling terminal either, so nothing
    # can be asked: before, getpass read the empty stdin and died with an EOFError traceback.
    result = subprocess.run(
        [*PARLEY, "users", "create", "--admin", "--email", "root@example.com", "--username", "x"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_environment(tmp_path),
        start_new_session=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "EOFError" not in result.stderr
    assert "--password" in result.stderr
    assert "terminal" in result.stderr
    assert result.stdout == ""


def test_a_misspelled_override_stops_the_command_naming_the_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [*PARLEY, "migrate"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_environment(tmp_path, PARLEY_SOCKET_MAX_FRAM_BYTES="131072"),
        timeout=COMMAND_SECONDS,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "PARLEY_SOCKET_MAX_FRAM_BYTES" in result.stderr
    assert "PARLEY_SOCKET_MAX_FRAME_BYTES (socket.max_frame_bytes)" in result.stderr
