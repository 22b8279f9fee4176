"""The engines under the cluster: what a bus does, and the Redis one (PostgreSQL's is
`parley.store.notify`, since only the store speaks SQL).

A bus carries opaque messages (the batches of `envelopes`) from each node to every node, the
sender included: a node that stops hearing its own messages knows its bus is broken, however
healthy the connection looks (the anchors' worst failures were silent subscribers). Either engine
keeps one sender's order and may lose messages (a reconnect, a subscriber cut off); the layers
above make up for that (`sequencer`, `remote_presence`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import anyio
import coredis
import coredis.retry

log = logging.getLogger(__name__)


class Bus(Protocol):
    async def publish(self, messages: Sequence[bytes]) -> None:
        """Send `messages` to every node, in order."""

    async def receive(self) -> bytes | str:
        """The next message from any node (this one's included)."""

    def describe(self) -> dict[str, object]: ...


BusOpener = Callable[[], AbstractAsyncContextManager[Bus]]
"""Connects a bus for the duration of a block (one per connection attempt)."""


class RedisBus:
    """Redis pub/sub on one channel: PUBLISH on one connection, SUBSCRIBE on another."""

    def __init__(
        self, client: coredis.Redis[bytes], subscription: AsyncIterable[object], channel: str
    ) -> None:
        self._client = client
        self._messages = aiter(subscription)
        self._channel = channel

    async def publish(self, messages: Sequence[bytes]) -> None:
        for message in messages:
            await self._client.publish(self._channel, message)

    async def receive(self) -> bytes:
        async for message in self._messages:
            if isinstance(message, dict) and message.get("type") == "message":
                data = message["data"]
                if isinstance(data, bytes):
                    return data
        raise ConnectionError("the Redis subscription ended")

    def describe(self) -> dict[str, object]:
        return {"engine": "redis"}


@asynccontextmanager
async def open_redis_bus(url: str, channel: str) -> AsyncIterator[Bus]:
    """Connect to Redis at `url` and subscribe to `channel`.

    coredis's own retries are off: a broken connection ends the block, so the node reports it
    and resyncs (`cluster`) instead of reconnecting silently underneath.
    """
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url, retry_policy=coredis.retry.NoRetryPolicy()
    )
    try:
        async with client:
            subscription = client.pubsub(
                channels=[channel],
                ignore_subscribe_messages=True,
                retry_policy=coredis.retry.NoRetryPolicy(),
            )
            async with subscription:
                yield RedisBus(client, subscription, channel)
    except* anyio.ClosedResourceError:
        # coredis unsubscribing on a connection already closed (a cancelled block, or Redis
        # gone): nothing is left to clean up.
        log.debug("the Redis subscription was closed already")
