"""Pusher's webhook events, the request body and its signature (PUSHER_PROTOCOL.md §10).

An event is a plain dict, as it goes into the `webhook_outbox` row and into the request:
`{"name": "channel_occupied", "channel": C}` and so on. The body of a request is
`{"time_ms": <when it is sent>, "events": [...]}`, and `X-Pusher-Signature` is the hex
HMAC-SHA256 of exactly those bytes with the application's secret, as Pusher's SDKs check it.
`time_ms` is the time of each attempt, not of the event: the Python SDK refuses a body more than
300 s old, and retries go on for 5 minutes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Final

import orjson

CHANNEL_OCCUPIED: Final = "channel_occupied"
CHANNEL_VACATED: Final = "channel_vacated"
MEMBER_ADDED: Final = "member_added"
MEMBER_REMOVED: Final = "member_removed"
CLIENT_EVENT: Final = "client_event"
CACHE_MISS: Final = "cache_miss"
SUBSCRIPTION_COUNT: Final = "subscription_count"
NAMES: Final = (
    CHANNEL_OCCUPIED,
    CHANNEL_VACATED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    CLIENT_EVENT,
    CACHE_MISS,
    SUBSCRIPTION_COUNT,
)


@dataclass(frozen=True, slots=True)
class Noted:
    """An event of the application with key `app_key`, before it is written."""

    app_key: str
    event: dict[str, Any]

    @property
    def name(self) -> str:
        name: str = self.event["name"]
        return name


def channel_event(name: str, channel: str) -> dict[str, Any]:
    """`channel_occupied`, `channel_vacated` or `cache_miss`."""
    return {"name": name, "channel": channel}


def member_event(name: str, channel: str, user_id: str) -> dict[str, Any]:
    return {"name": name, "channel": channel, "user_id": user_id}


def subscription_count(channel: str, count: int) -> dict[str, Any]:
    return {"name": SUBSCRIPTION_COUNT, "channel": channel, "subscription_count": count}


def client_event(
    channel: str, event: str, data: Any, socket_id: str, user_id: str | None
) -> dict[str, Any]:
    """`client_event`; `data` as a string, as the client sent it (Pusher's double encoding:
    data that is not a string is JSON-encoded), `user_id` on presence channels only."""
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    found: dict[str, Any] = {
        "name": CLIENT_EVENT,
        "channel": channel,
        "event": event,
        "data": text,
        "socket_id": socket_id,
    }
    if user_id is not None:
        found["user_id"] = user_id
    return found


def body(events: list[dict[str, Any]], time_ms: int) -> bytes:
    return orjson.dumps({"time_ms": time_ms, "events": events})


def signature(secret: str, raw: bytes) -> str:
    """`X-Pusher-Signature`: hex HMAC-SHA256 of the raw body with the application's secret."""
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def headers(app_key: str, secret: str, raw: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Pusher-Key": app_key,
        "X-Pusher-Signature": signature(secret, raw),
    }
