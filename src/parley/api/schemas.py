"""JSON Schema fragments shared by the OpenAPI document (the JSON forms themselves live beside
their models: `actors.chat_events.message_payload` for messages, `parley.isotime` for times)."""

from __future__ import annotations

from typing import Any

UUID: dict[str, Any] = {"type": "string", "format": "uuid"}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
NULLABLE_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
CURSOR: dict[str, Any] = {"type": ["string", "null"]}
TEXT: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[^\u0000]*[^\s\u0000][^\u0000]*$",
    "description": "not blank (something besides white space), no NUL",
}
"""A message or reply body as `actors.message_rules.check_text` takes it (its length bound is a
setting, so not stated here)."""
CLIENT_ID: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": r"^[^\u0000]*$"}
"""A message's client_id as `actors.message_rules.check_client_id` takes it (with its maxLength)."""


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


def query_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }
