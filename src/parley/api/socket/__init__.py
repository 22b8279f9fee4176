"""The realtime socket (DESIGN §5, PHOENIX_PROTOCOL.md; user guide: docs/realtime.md).

* `core/`: the channel core, knowing no chat, no frame format and no transport: the channel
  contract (`channel`), the join (`instance`), the session actor (`session`), the bounded
  outbound queue, the route table (`router`), the hub of a node's sessions, and what a
  transport provides (`transport`).
* `phoenix/`: Phoenix's V1/V2 serializers and its upgrade decision (`connect`).
* `transports/`: the fast path on Parley's own listener (`fast_path`) and the portable ASGI
  websocket (`asgi`).
* `channels/`: the application's channels, one module each over typed ports, and their route
  table (`channels.routes`), built at the composition root (`parley.service`).

Presence and pubsub live in the actors layer (`parley.actors.realtime`).
"""
