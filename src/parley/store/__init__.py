"""Persistence: the only package that knows SQL. Trio code reaches asyncpg through `Database`."""

from parley.store.database import Database, StoreUnavailable

__all__ = ["Database", "StoreUnavailable"]
