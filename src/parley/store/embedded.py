"""The embedded PostgreSQL used when `DATABASE_URL` is unset: pgserver's bundled binaries.

pgserver keeps one server per data directory and stops it when the last handle in the last process
is
released, so `stop_embedded` leaves no postgres process behind. Starting takes about a second and
blocks,
so callers run it in a worker thread.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def start_embedded(pgdata: Path) -> tuple[str, Any]:
    """Start (or attach to) the embedded server in `pgdata`; returns its DSN and a handle to stop
    it."""
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); pgserver copes with
        # that.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        server = get_server(pgdata, cleanup_mode="stop")
    return str(server.get_uri()), server


def stop_embedded(server: Any) -> None:
    """Release our handle; pgserver stops PostgreSQL when no other process holds one."""
    server.cleanup()
