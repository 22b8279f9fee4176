"""Autobahn|Testsuite for drill W9: a Python 2.7 virtualenv with `wstest`, made once and cached.

The suite (autobahntestsuite 25.10.1) runs on Python 2.7 only. The recipe, each step skipped when
its result is already there:

1. pyenv's CPython 2.7.18 (`pyenv install 2.7.18`; pyenv from `$PYENV_ROOT`, `~/.pyenv` or the
   PATH). Without pyenv the drill is skipped with a message saying so; it never passes silently.
2. `virtualenv==20.21.1` (the last release that makes Python 2.7 environments) in a Python 3
   venv of its own.
3. A Python 2.7 virtualenv made with it, and `pip install autobahntestsuite==25.10.1` there.

Everything lives under `$PARLEY_AUTOBAHN_CACHE` (default `~/.cache/parley/autobahn`), so the
second run starts at once. `wstest()` returns the path of the `wstest` script, or a `Missing`
that says what is missing and how to get it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PYTHON2: Final = "2.7.18"
VIRTUALENV: Final = "virtualenv==20.21.1"
AUTOBAHN: Final = "autobahntestsuite==25.10.1"
SETUP_TIMEOUT_SECONDS: Final = 1800.0
"""Compiling CPython 2.7 takes minutes on two cores; installing the suite about one."""


@dataclass(frozen=True)
class Missing:
    """Why the suite cannot run here, and what to do about it."""

    reason: str


def cache_dir() -> Path:
    configured = os.environ.get("PARLEY_AUTOBAHN_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "parley" / "autobahn"


def _pyenv() -> Path | None:
    root = os.environ.get("PYENV_ROOT")
    candidates = [Path(root) / "bin" / "pyenv"] if root else []
    candidates.append(Path.home() / ".pyenv" / "bin" / "pyenv")
    found = shutil.which("pyenv")
    if found:
        candidates.append(Path(found))
    return next((path for path in candidates if path.is_file()), None)


def _run(command: list[str], log: Path) -> str | None:
    """Run one set-up step, its output appended to `log`; None if it worked, else why not."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, timeout=SETUP_TIMEOUT_SECONDS,
                check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(command)}` did not finish: {exc} (log: {log})"
    if done.returncode != 0:
        return f"`{' '.join(command)}` exited {done.returncode} (log: {log})"
    return None


def _python2(pyenv: Path, log: Path) -> Path | Missing:
    root = Path(
        subprocess.run(
            [str(pyenv), "root"], capture_output=True, text=True, check=False
        ).stdout.strip()
        or pyenv.parent.parent
    )
    python = root / "versions" / PYTHON2 / "bin" / "python2.7"
    if not python.is_file():
        failed = _run([str(pyenv), "install", "--skip-existing", PYTHON2], log)
        if failed is not None or not python.is_file():
            return Missing(
                f"pyenv could not build Python {PYTHON2} ({failed or 'no interpreter after it'}); "
                "it needs a C compiler and the usual headers (Debian: build-essential "
                "libssl-dev zlib1g-dev libbz2-dev libreadline-dev libsqlite3-dev libffi-dev)"
            )
    return python


def wstest() -> Path | Missing:
    """The `wstest` of a ready Autobahn|Testsuite, set up now if it is not yet."""
    cache = cache_dir()
    env = cache / "py27"
    script = env / "bin" / "wstest"
    ready = cache / f".ready-{AUTOBAHN}"
    if ready.is_file() and script.is_file():
        return script
    pyenv = _pyenv()
    if pyenv is None:
        return Missing(
            "Autobahn|Testsuite needs Python 2.7 from pyenv, and pyenv was not found (looked in "
            "$PYENV_ROOT, ~/.pyenv and the PATH). Install pyenv "
            "(https://github.com/pyenv/pyenv#installation), then run the drill again: it runs "
            f"`pyenv install {PYTHON2}` and installs {VIRTUALENV} and {AUTOBAHN} under {cache}."
        )
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / "setup.log"
    python2 = _python2(pyenv, log)
    if isinstance(python2, Missing):
        return python2
    tool = cache / "virtualenv-tool"
    virtualenv = tool / "bin" / "virtualenv"
    steps: list[list[str]] = []
    if not virtualenv.is_file():
        steps += [
            [sys.executable, "-m", "venv", "--clear", str(tool)],
            [str(tool / "bin" / "python"), "-m", "pip", "install", "--quiet", VIRTUALENV],
        ]
    steps += [
        [str(virtualenv), "--clear", "--python", str(python2), str(env)],
        [str(env / "bin" / "pip"), "install", "--quiet", "--no-python-version-warning", AUTOBAHN],
    ]
    for step in steps:
        failed = _run(step, log)
        if failed is not None:
            return Missing(f"setting up Autobahn|Testsuite failed: {failed}")
    if not script.is_file():
        return Missing(f"{AUTOBAHN} installed no `wstest` in {env} (log: {log})")
    ready.touch()
    return script
