"""This node's identity for the console and `/metrics`: its name, version and start time.

The JSON of every console view carries `node`, so that a cluster (DESIGN §8) can show several
nodes side by side without changing a view's shape; until then there is one.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime

from parley import __version__


@dataclass(frozen=True)
class Node:
    """This process as operators see it."""

    name: str
    """`<hostname>-<pid>`: unique among the nodes of one machine and across restarts of one."""
    version: str = __version__
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def this_process(cls) -> Node:
        return cls(f"{socket.gethostname()}-{os.getpid()}")

    def uptime_seconds(self) -> float:
        return (datetime.now(UTC) - self.started_at).total_seconds()
