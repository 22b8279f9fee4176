"""`Webhooks`: this node's webhook parts, built together at the composition root.

`Webhooks.on(...)` makes the store, the deliverer, the recorder (writing through an `OutboxSink`
that wakes the deliverer) and attaches the recorder to this node's local pubsub (occupancy of
`app:` topics) and presence (members). `hooks` is what the Pusher socket reports client events
and cache misses to (it matches `PusherHooks`); `child_spec` supervises the two actors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parley.integrations import topics
from parley.integrations.webhooks.deliverer import WebhookDeliverer
from parley.integrations.webhooks.recorder import WebhookRecorder
from parley.integrations.webhooks.sink import OutboxSink
from parley.store.webhooks import WebhookStore
from parley.supervision import ChildSpec, Strategy, Supervisor

if TYPE_CHECKING:
    from parley.actors.realtime.presence import Presence
    from parley.actors.realtime.pubsub import LocalPubSub
    from parley.config import SupervisionSettings, WebhookSettings
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

    def child_spec(self, supervision: SupervisionSettings) -> ChildSpec:
        """A one_for_one supervisor of the recorder and the deliverer: either restarts alone,
        and a crash here never reaches the rest of the tree (the HTTP server after it) unless
        they crash past the supervisor's intensity."""
        grace = supervision.child_shutdown_seconds
        self.recorder.shutdown_seconds = grace / 2
        supervisor = Supervisor(
            "webhooks",
            self._children(grace),
            strategy=Strategy.ONE_FOR_ONE,
            max_restarts=supervision.max_restarts,
            window_seconds=supervision.restart_window_seconds,
            backoff_seconds=supervision.restart_backoff_seconds,
        )
        return supervisor.child_spec(shutdown_timeout=grace * 2)

    def _children(self, shutdown_timeout: float) -> list[ChildSpec]:
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
