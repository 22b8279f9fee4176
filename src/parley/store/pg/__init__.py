"""PostgreSQL on libpq from the trio thread: the connections that must not wait for the asyncio
bridge's thread (the message writer's; a LISTEN connection). See `connection`."""

from parley.store.pg.connection import (
    Notification,
    PgBroken,
    PgClosed,
    PgConnection,
    PgError,
    Row,
    connect,
)

__all__ = ["Notification", "PgBroken", "PgClosed", "PgConnection", "PgError", "Row", "connect"]
