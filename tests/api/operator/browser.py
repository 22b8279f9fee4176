"""Headless Chromium for the console's browser test, installed when missing.

Playwright drives Debian's `chromium` (its own browser downloads come from hosts outside the
package registries, which this project's machines do not reach). When no Chromium is on the
machine and the tests run as root with apt-get, it is installed, and the test says so; otherwise
the test fails with the command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

DEBIAN_PACKAGE = "chromium"


def chromium_executable() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.fail(
            "the console's browser test needs Chromium: apt-get install chromium (as root), "
            "then run it again"
        )
    print(
        f"installing Debian's {DEBIAN_PACKAGE} for the console's browser test "
        f"(apt-get install {DEBIAN_PACKAGE})",
        file=sys.__stderr__,
        flush=True,
    )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
    subprocess.run(["apt-get", "install", "-y", "-qq", DEBIAN_PACKAGE], check=True, env=environment)
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(f"apt-get installed {DEBIAN_PACKAGE} but no chromium is on the PATH")
    return found
