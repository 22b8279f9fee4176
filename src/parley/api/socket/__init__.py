"""The Phoenix Channels socket (PHOENIX_PROTOCOL.md, DESIGN.md §5; user guide: docs/realtime.md).

Transport-independent core: `message` (frames), `serializer` (V1/V2), `ratelimit`, `outbound`
(the bounded per-connection queue), `transport` (what a transport provides), `auth` (the upgrade
decision), `session` (the SessionActor), `channels` (topic handlers), `hub` (sessions by user,
counters). `asgi_transport` serves it in front of the Quart-Trio app. Presence bookkeeping lives in
the actors layer (`parley.actors.presence`).
"""
