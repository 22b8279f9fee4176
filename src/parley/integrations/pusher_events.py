"""The bodies of Pusher's trigger calls (PUSHER_PROTOCOL.md §9): `POST /apps/{app_id}/events`
and `POST /apps/{app_id}/batch_events`, as `Trigger`s for the one publish path.

* events: `{"name", "data", "channels": [...] | "channel", "socket_id"?, "info"?}`;
* batch_events: `{"batch": [{"name", "data", "channel", "socket_id"?, "info"?}, ...]}`, 1 to
  `integrations.max_batch_events` of them, all checked before any is published (one bad event
  refuses the whole batch, and nothing is delivered).

Every rule a trigger obeys whichever API it came through (event name, channel count and names,
`#server-to-user-{id}`, data size, socket id) is `triggers.build_trigger`'s; what is here is the
shape of Pusher's bodies and `info` (`user_count`, `subscription_count`). Fields Pusher does not
document are ignored, as Pusher does (SDKs of other languages send a few of their own). `data`
may be any JSON value: the SDKs send a string (Pusher's double encoding), relayed to Pusher
sockets as it is. Errors are `TriggerError`s; those of the body's shape are 400s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from parley.integrations.channel_info import SUBSCRIPTION_COUNT, USER_COUNT
from parley.integrations.triggers import Trigger, TriggerError, TriggerLimits, build_trigger

INFO_ATTRIBUTES: Final = (USER_COUNT, SUBSCRIPTION_COUNT)
"""What `info` may ask of a channel (Pusher's two)."""


@dataclass(frozen=True, slots=True)
class PusherEvent:
    """One event of a Pusher trigger call: its `Trigger`, the channels it names (unique, in
    order, as `info` reports them) and the attributes `info` asks for."""

    trigger: Trigger
    channels: tuple[str, ...]
    info: tuple[str, ...]


def json_body(raw: bytes) -> dict[str, Any]:
    """The request's JSON object (whatever its content type: curl's default is a form)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TriggerError(400, "body", "the body is not JSON") from None
    if not isinstance(value, dict):
        raise TriggerError(400, "body", "the body must be a JSON object")
    return value


def parse_events(app_key: str, raw: bytes, limits: TriggerLimits) -> PusherEvent:
    """The event a `POST /events` body describes."""
    fields = json_body(raw)
    channels: list[Any]
    if "channels" in fields:
        if "channel" in fields:
            raise TriggerError(400, "channels", "give channels or channel, not both")
        channels = fields["channels"]
        if not isinstance(channels, list):
            raise TriggerError(400, "channels", "must be a list of channel names")
    elif "channel" in fields:
        channels = [fields["channel"]]
    else:
        raise TriggerError(400, "channels", "name the channels (channels or channel)")
    return _event(app_key, fields, channels, limits)


def parse_batch(
    app_key: str, raw: bytes, limits: TriggerLimits, max_events: int
) -> list[PusherEvent]:
    """The events a `POST /batch_events` body describes, every one checked."""
    batch = json_body(raw).get("batch")
    if not isinstance(batch, list) or not 1 <= len(batch) <= max_events:
        raise TriggerError(400, "batch", f"batch must be a list of 1 to {max_events} events")
    events = []
    for index, fields in enumerate(batch):
        if not isinstance(fields, dict):
            raise TriggerError(400, f"batch[{index}]", "each event is a JSON object")
        if "channel" not in fields or "channels" in fields:
            raise TriggerError(400, f"batch[{index}].channel", "a batched event names one channel")
        try:
            events.append(_event(app_key, fields, [fields["channel"]], limits))
        except TriggerError as exc:
            raise TriggerError(exc.status, f"batch[{index}].{exc.field}", exc.message) from None
    return events


def parse_info(value: object) -> tuple[str, ...]:
    """`info` (comma-separated attribute names) as the attributes it names; absent: none."""
    if value is None:
        return ()
    if not isinstance(value, str):
        raise TriggerError(400, "info", "a comma-separated list of attributes")
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in INFO_ATTRIBUTES]
    if unknown:
        raise TriggerError(400, "info", f"unknown attribute {unknown[0][:40]!r}")
    return names


def _event(
    app_key: str, fields: Mapping[str, Any], channels: list[Any], limits: TriggerLimits
) -> PusherEvent:
    name = fields.get("name")
    if not isinstance(name, str):
        raise TriggerError(400, "name", "the event's name is a string")
    if "data" not in fields:
        raise TriggerError(400, "data", "the event's data is required")
    if not channels:
        raise TriggerError(400, "channels", "name at least one channel")
    if not all(isinstance(channel, str) for channel in channels):
        raise TriggerError(400, "channels", "channel names are strings")
    info = parse_info(fields.get("info"))
    trigger = build_trigger(
        app_key, name, channels, fields["data"], fields.get("socket_id"), limits
    )
    return PusherEvent(trigger, tuple(dict.fromkeys(channels)), info)
