"""Persistence: the only package that knows SQL. Trio code reaches asyncpg through `Database`;
the message writer has a connection of its own, on libpq, that it drives from the trio thread
(`pg`)."""

from parley.store.database import Database, StoreUnavailable, database_unavailable

__all__ = ["Database", "StoreUnavailable", "database_unavailable"]
