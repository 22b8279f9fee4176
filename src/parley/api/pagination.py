"""Opaque keyset cursors: `?limit=&before=` in, `next_cursor` out (DESIGN §4)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from parley.api.errors import invalid
from parley.api.schemas import query_parameter

PAGE_QUERY = [
    query_parameter("limit", {"type": "integer", "minimum": 1}, "page size"),
    query_parameter("before", {"type": "string"}, "next_cursor of the previous page"),
]
"""The query parameters of every cursor-paginated list, for its `endpoint(query=...)`."""


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, name: str = "before") -> tuple[datetime, uuid.UUID] | None:
    """Parse a cursor made by `encode_cursor`; a malformed one is a 422 naming the parameter."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, row_id = raw.partition("|")
        parsed_at = datetime.fromisoformat(at)
        if parsed_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return parsed_at, uuid.UUID(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid({name: ["is not a valid cursor"]}) from None
