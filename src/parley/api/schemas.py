"""JSON Schema fragments shared by the OpenAPI document, and the JSON forms of our models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from parley.store.messages import Message

UUID: dict[str, Any] = {"type": "string", "format": "uuid"}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
NULLABLE_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
CURSOR: dict[str, Any] = {"type": ["string", "null"]}


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def page_of(item: dict[str, Any]) -> dict[str, Any]:
    return obj({"data": {"type": "array", "items": item}, "next_cursor": CURSOR})


MESSAGE: dict[str, Any] = obj(
    {
        "id": {"type": "integer"},
        "conversation_id": UUID,
        "seq": {"type": "integer"},
        "sender_id": {"type": ["string", "null"], "format": "uuid"},
        "body": {"type": "string"},
        "client_id": {"type": ["string", "null"]},
        "inserted_at": TIME,
        "edited_at": NULLABLE_TIME,
        "deleted_at": NULLABLE_TIME,
    }
)


def message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversation_id": str(message.conversation_id),
        "seq": message.seq,
        "sender_id": str(message.sender_id) if message.sender_id else None,
        "body": message.body,
        "client_id": message.client_id,
        "inserted_at": iso(message.inserted_at),
        "edited_at": iso(message.edited_at),
        "deleted_at": iso(message.deleted_at),
    }


def query_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }
