"""The Phoenix Channels protocol core: message model, serializers, presence and rate limits.

Transport-independent and free of I/O: the session actor and the WebSocket / long-poll transports
build on these modules (PHOENIX_PROTOCOL.md, DESIGN.md §5).
"""
