"""A live Parley for the drills: `serve` in the test's nursery over a given database, users made
through the store and signed in with the token service (as tests/socket/conftest.py does)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import trio

from parley.config import Settings
from parley.service import RunningServer, serve
from tests.socket.conftest import Realtime, socket_settings


async def start_parley(
    nursery: trio.Nursery, tmp_path: Path, database_url: str, **overrides: dict[str, Any]
) -> Realtime:
    settings: Settings = socket_settings(tmp_path, database_url, **overrides)
    running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    return Realtime(running)


def parley_restarts(live: Realtime) -> int:
    """Restarts of anything under Parley's root supervisor since it started."""
    root = live.runtime.root
    assert root is not None
    return sum(child.restarts for child in root.statistics().children)
