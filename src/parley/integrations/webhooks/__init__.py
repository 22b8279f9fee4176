"""Pusher webhooks (PUSHER_PROTOCOL.md §10, docs/pusher.md "Webhooks").

* `events`: Pusher's event objects, the request body and its signature.
* `recorder`: `WebhookRecorder`, the supervised actor that turns occupancy (pubsub subscriber
  counts), presence and the Pusher socket's hooks into events, holds `channel_vacated` and
  `member_removed` for `webhooks.hold_seconds`, and writes them in batches.
* `sink`: `OutboxSink`, what the recorder writes through: applications resolved by key, events
  they did not ask for dropped, rows into the `webhook_outbox` table.
* `retry`: the back-off and give-up rule.
* `deliverer`: `WebhookDeliverer`, the supervised actor that POSTs the outbox's rows.
* `node`: `Webhooks`, the parts built together at the composition root.
"""
