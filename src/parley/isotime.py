"""Times on the wire: ISO 8601 in UTC with a `Z` (DESIGN §4), one spelling for REST and sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """`2026-12-03T17:18:53.123456Z` for an aware time (converted to UTC), None for None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    """The current time, spelled as `iso` spells it."""
    return iso(datetime.now(UTC))
