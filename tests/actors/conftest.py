"""Fixtures for the actor tests: an actor system and a running dynamic supervisor."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from parley.actors import ActorSystem
from parley.config import ActorSettings
from parley.supervision import DynamicSupervisor

if TYPE_CHECKING:
    import trio


@pytest.fixture
def system() -> ActorSystem:
    return ActorSystem(ActorSettings(call_timeout_seconds=5.0, registry_mailbox=1024))


@pytest.fixture
async def supervisor(nursery: trio.Nursery) -> DynamicSupervisor:
    sup = DynamicSupervisor("actors", max_restarts=100, window_seconds=1.0, backoff_seconds=0.0)
    started: DynamicSupervisor = await nursery.start(sup.run)
    return started
