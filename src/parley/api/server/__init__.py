"""Parley's public listener and its Hypercorn glue (every use of Hypercorn internals is here)."""
