"""Drill W9: Autobahn|Testsuite's fuzzing client, cases 1-7, 9 and 10, against both WebSocket
transports (the fast path and the ASGI websocket on Hypercorn), each serving an echo
(`tests/drills/echo.py`).

Cases: 1 framing, 2 pings/pongs, 3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close
handling, 9 limits/performance (messages up to 16 MiB, so the echo's limit is 16 MiB), 10
miscellaneous. 12 and 13 (permessage-deflate) are not run: compression is off by default.

A case passes when both its behaviour and its close behaviour are OK, NON-STRICT or
INFORMATIONAL; anything else (FAILED, WRONG CODE, UNCLEAN, FAILED BY CLIENT...) counts as
failed. The suite's own report (HTML and JSON per case) stays in the test's tmp_path.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from tests.drills.autobahn import Missing, wstest
from tests.drills.echo import echo_settings, serve_asgi_echo, serve_fast_path_echo
from tests.drills.figures import figure

CASES: Final = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
PASSING: Final = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
RUN_TIMEOUT_SECONDS: Final = 1200.0

Server = Callable[..., Awaitable[None]]
TRANSPORTS: Final[dict[str, Server]] = {
    "fast_path": serve_fast_path_echo,
    "asgi": serve_asgi_echo,
}


@pytest.fixture(scope="session")
def wstest_script() -> Path:
    found = wstest()
    if isinstance(found, Missing):
        pytest.skip(f"W9 not run: {found.reason}")
    return found


def summarize(index: dict[str, Any], agent: str) -> tuple[Counter[str], dict[str, str]]:
    """(how many cases had each behaviour, the failed cases with what went wrong)."""
    behaviours: Counter[str] = Counter()
    failed: dict[str, str] = {}
    for case, result in index[agent].items():
        behaviour, closing = result["behavior"], result["behaviorClose"]
        behaviours[behaviour] += 1
        if behaviour not in PASSING or closing not in PASSING:
            failed[case] = f"{behaviour} / close {closing}"
    return behaviours, failed


def _case_order(case: str) -> list[int]:
    return [int(part) for part in case.split(".")]


@pytest.mark.slow
@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_w9_autobahn_fuzzingclient(
    wstest_script: Path, tmp_path: Path, nursery: trio.Nursery, transport: str
) -> None:
    url: str = await nursery.start(TRANSPORTS[transport], echo_settings())
    reports = tmp_path / "reports"
    spec = tmp_path / "fuzzingclient.json"
    agent = f"parley-{transport}"
    spec.write_text(
        json.dumps(
            {
                "outdir": str(reports),
                "servers": [{"agent": agent, "url": url}],
                "cases": CASES,
                "exclude-cases": [],
                "exclude-agent-cases": {},
            }
        )
    )
    with trio.fail_after(RUN_TIMEOUT_SECONDS):
        done = await trio.run_process(
            [str(wstest_script), "-m", "fuzzingclient", "-s", str(spec)],
            cwd=tmp_path,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    index_file = reports / "index.json"
    if done.returncode != 0 or not index_file.is_file():
        sys.stderr.write(done.stdout.decode(errors="replace")[-4000:])
        sys.stderr.write(done.stderr.decode(errors="replace")[-4000:])
    assert index_file.is_file(), f"wstest exited {done.returncode} without a report"
    behaviours, failed = summarize(json.loads(index_file.read_text()), agent)
    cases = sum(behaviours.values())
    figure("W9", f"{transport}_cases", cases, ">=300")
    figure("W9", f"{transport}_failed", len(failed), "0")
    figure("W9", f"{transport}_non_strict", behaviours["NON-STRICT"], "any")
    figure("W9", f"{transport}_informational", behaviours["INFORMATIONAL"], "any")
    shown = {case: failed[case] for case in sorted(failed, key=_case_order)}
    assert failed == {}, f"{len(failed)} failed (report: {reports}/index.html): {shown}"
    assert cases >= 300, behaviours
