"""`Webhooks`: this node's webhook parts, built together at the composition root.

`Webhooks.on(...)` makes the store, the deliverer, the recorder (writing through an `OutboxSink`
that wakes the deliverer) and attaches the recorder to this node's local pubsub (occupancy of
`app:` topics) and presence (members). `hooks` is what the Pusher socket reports client events
and cache misses to (it matches `PusherHooks`); `children` are the two supervised actors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parley.integrations import topics
from parley.integrations.webhooks.deliverer import WebhookDeliverer
from parley.integrations.webhooks.recorder import WebhookRecorder
from parley.integrations.webhooks.sink import OutboxSink
from parley.store.webhooks import WebhookStore
from parley.supervision import ChildSpec

if TYPE_CHECKING:
    from parley.actors.realtime.presence import Presence
    from parley.actors.realtime.pubsub import LocalPubSub
    from parley.config import WebhookSettings
    from parley.integrations.directory import ApplicationDirectory
    from parley.store import Database


class Webhooks:
    def __init__(
        self, store: WebhookStore, recorder: WebhookRecorder, deliverer: WebhookDeliverer
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.deliverer = deliverer

    @classmethod
    def on(
        cls,
        database: Database,
        settings: WebhookSettings,
        directory: ApplicationDirectory,
        pubsub: LocalPubSub,
        presence: Presence,
    ) -> Webhooks:
        store = WebhookStore(database)
        deliverer = WebhookDeliverer(store, settings)
        sink = OutboxSink(directory, store, deliverer.wake)
        recorder = WebhookRecorder(settings, lambda topic, key: len(presence.get(topic, key)), sink)
        pubsub.watch(topics.PREFIX + ":", recorder.count)
        presence.watch(recorder.presence)
        return cls(store, recorder, deliverer)

    @property
    def hooks(self) -> WebhookRecorder:
        """The Pusher socket's `PusherHooks`."""
        return self.recorder

    def children(self, shutdown_timeout: float) -> list[ChildSpec]:
        self.recorder.shutdown_seconds = shutdown_timeout / 2
        return [
            ChildSpec(
                "webhook-recorder",
                self.recorder.run,
                shutdown_timeout=shutdown_timeout,
                describe=self.recorder.describe,
            ),
            ChildSpec(
                "webhook-deliverer",
                self.deliverer.run,
                shutdown_timeout=shutdown_timeout,
                describe=self.deliverer.describe,
            ),
        ]

    def describe(self) -> dict[str, Any]:
        return {"recorder": self.recorder.describe(), "deliverer": self.deliverer.describe()}
