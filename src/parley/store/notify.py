"""The PostgreSQL cluster bus: LISTEN on one connection, NOTIFY on another (DESIGN §8).

Both are Parley's own libpq sessions driven from the trio thread (`Database.connect_own`), so
notifications are read where they are used, with no hop through the asyncio bridge. Publishing
sends every batch of a flush in one statement (`pg_notify` over an array), outside any
transaction of the message writer: NOTIFY inside the insert transaction serialises commits
(docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from parley.store.database import Database
from parley.store.pg import PgConnection

_NOTIFY_ONE = "SELECT pg_catalog.pg_notify($1, $2)"
_NOTIFY_MANY = "SELECT pg_catalog.pg_notify($1, batch) FROM unnest($2::text[]) AS batch"


class NotifyBus:
    """One node's two sessions on the cluster's NOTIFY channel."""

    def __init__(self, listener: PgConnection, sender: PgConnection, channel: str) -> None:
        self._listener = listener
        self._sender = sender
        self._channel = channel.encode()

    async def publish(self, messages: Sequence[bytes]) -> None:
        """NOTIFY every message, in order, in one round trip."""
        if len(messages) == 1:
            await self._sender.execute(_NOTIFY_ONE, [self._channel, messages[0]])
        elif messages:
            await self._sender.execute(_NOTIFY_MANY, [self._channel, _text_array(messages)])

    async def receive(self) -> str:
        """The next message on the channel (ours included: the bus probes itself with them)."""
        notification = await self._listener.notification()
        return notification.payload

    def describe(self) -> dict[str, object]:
        return {
            "engine": "postgres",
            "listener_pid": self._listener.backend_pid,
            "sender_pid": self._sender.backend_pid,
        }


@asynccontextmanager
async def open_notify_bus(database: Database, channel: str, node: str) -> AsyncIterator[NotifyBus]:
    """Connect both sessions and LISTEN; both close when the block ends."""
    async with (
        await database.connect_own(f"parley-bus-listen {node}") as listener,
        await database.connect_own(f"parley-bus-notify {node}") as sender,
    ):
        await listener.execute(f"LISTEN {_identifier(channel)}")
        yield NotifyBus(listener, sender, channel)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text_array(items: Sequence[bytes]) -> bytes:
    """A text[] literal of `items` (each quoted, with `"` and `\\` escaped)."""
    quoted = (b'"' + item.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"' for item in items)
    return b"{" + b",".join(quoted) + b"}"
