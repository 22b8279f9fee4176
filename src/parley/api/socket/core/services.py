"""What every session of a node shares: settings, pubsub, presence, the route table, the actor
system, and the hub's counters. Built once by the `SocketHub` (at the composition root) and
handed to each session, so a session needs no handle on the hub itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from parley.actors.realtime.presence import Presence
from parley.actors.realtime.pubsub import PubSub
from parley.actors.runtime import ActorSystem
from parley.api.socket.core.router import Router
from parley.config import Settings


@dataclass(frozen=True, slots=True)
class SocketServices:
    settings: Settings
    pubsub: PubSub
    presence: Presence
    router: Router
    system: ActorSystem
    count: Callable[[str], None]
    """Adds one to a node-wide counter (`GET /debug/sockets`)."""
