"""Transports over the channel core: the fast path (our own listener) and the ASGI websocket."""
