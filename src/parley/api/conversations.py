"""Conversations over REST (DESIGN §4): create, list, members, history, send, edit, read, tokens.

Non-members get 404 for everything under a conversation, never 403, so ids cannot be probed. Sending
goes through the same conversation actor as the socket, so a message is acknowledged only once it is
committed, and a resent `client_id` returns the original message.
"""

from __future__ import annotations

import uuid
from typing import Any

from quart import Blueprint, Response, jsonify, request

from parley.actors.chat import ChatUnavailable, NotAMember, message_payload
from parley.actors.message_rules import CLIENT_ID_MAX_CHARS, check_text, validate_new_message
from parley.api.body import json_object, query_int, query_optional_int
from parley.api.context import parley_context
from parley.api.endpoint import (
    ERROR_RESPONSE,
    NO_CONTENT,
    Auth,
    Principal,
    current_principal,
    endpoint,
    ok,
)
from parley.api.errors import ApiError, invalid, not_found, unavailable
from parley.api.pagination import PAGE_QUERY, decode_cursor, encode_cursor
from parley.api.schemas import (
    CLIENT_ID,
    MESSAGE,
    NULLABLE_TIME,
    TEXT,
    TIME,
    UUID,
    obj,
    page_of,
    query_parameter,
)
from parley.isotime import iso
from parley.store.conversations import Conversation, ConversationSummary, Member, UnknownUsers

blueprint = Blueprint("conversations", __name__)

MEMBER = obj(
    {
        "user_id": UUID,
        "role": {"type": "string", "enum": ["owner", "member"]},
        "joined_at": TIME,
        "last_read_seq": {"type": "integer"},
        "muted": {"type": "boolean"},
    }
)
CONVERSATION = obj(
    {
        "id": UUID,
        "kind": {"type": "string", "enum": ["direct", "group"]},
        "title": {"type": ["string", "null"]},
        "created_by": {"type": ["string", "null"], "format": "uuid"},
        "last_seq": {"type": "integer"},
        "last_message_at": NULLABLE_TIME,
        "inserted_at": TIME,
    }
)
CONVERSATION_DETAIL = obj(
    {**CONVERSATION["properties"], "members": {"type": "array", "items": MEMBER}}
)
SUMMARY = obj(
    {
        **CONVERSATION["properties"],
        "last_message": {"anyOf": [MESSAGE, {"type": "null"}]},
        "unread_count": {"type": "integer", "minimum": 0},
    }
)
UUID_LIST = {"type": "array", "items": UUID, "maxItems": 1000}
CREATE_BODY = {
    "type": "object",
    "required": ["member_ids"],
    "properties": {"member_ids": {**UUID_LIST, "minItems": 1}, "title": {"type": "string"}},
}
SEND_BODY = {
    "type": "object",
    "required": ["body"],
    "properties": {
        "body": TEXT,
        "client_id": {**CLIENT_ID, "maxLength": CLIENT_ID_MAX_CHARS},
    },
}
EDIT_BODY = {"type": "object", "required": ["body"], "properties": {"body": TEXT}}
MEMBERS_BODY = {"type": "object", "required": ["user_ids"], "properties": {"user_ids": UUID_LIST}}
READ_BODY = {
    "type": "object",
    "required": ["seq"],
    "properties": {"seq": {"type": "integer", "minimum": 0}},
}


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.id),
        "kind": conversation.kind,
        "title": conversation.title,
        "created_by": str(conversation.created_by) if conversation.created_by else None,
        "last_seq": conversation.last_seq,
        "last_message_at": iso(conversation.last_message_at),
        "inserted_at": iso(conversation.inserted_at),
    }


def member_json(member: Member) -> dict[str, Any]:
    return {
        "user_id": str(member.user_id),
        "role": member.role,
        "joined_at": iso(member.joined_at),
        "last_read_seq": member.last_read_seq,
        "muted": member.muted,
    }


def summary_json(summary: ConversationSummary) -> dict[str, Any]:
    last = summary.last_message
    return {
        **conversation_json(summary.conversation),
        "last_message": message_payload(last) if last else None,
        "unread_count": summary.unread_count,
    }


def detail_json(conversation: Conversation, members: list[Member]) -> dict[str, Any]:
    return {**conversation_json(conversation), "members": [member_json(m) for m in members]}


def _uuid_list(body: dict[str, Any], name: str, *, allow_empty: bool) -> list[uuid.UUID]:
    value = body.get(name)
    if not isinstance(value, list) or (not value and not allow_empty):
        raise invalid({name: ["must be a non-empty list of user ids"]})
    limit = parley_context().settings.messages.group_max_members
    if len(value) > limit:
        raise invalid({name: [f"must have at most {limit} ids"]})
    ids = []
    for item in value:
        try:
            ids.append(uuid.UUID(item) if isinstance(item, str) else None)
        except ValueError:
            ids.append(None)
    if any(item is None for item in ids):
        raise invalid({name: ["must contain only user ids (UUIDs)"]})
    return [item for item in ids if item is not None]


def _checked_text(value: Any, name: str, max_chars: int) -> str:
    """`value` if it passes the text rule (`message_rules.check_text`), else a 422 naming `name`."""
    errors = check_text(value, max_chars)
    if errors:
        raise invalid({name: errors})
    assert isinstance(value, str)
    return value


async def membership(conversation_id: uuid.UUID) -> tuple[Principal, Conversation, list[Member]]:
    """The caller, the conversation and its members; 404 unless the caller is a member."""
    principal = current_principal()
    found = await parley_context().stores.conversations.get_for_member(
        conversation_id, principal.user.id
    )
    if found is None:
        raise not_found("no such conversation")
    return principal, found[0], found[1]


@endpoint(
    blueprint,
    "POST",
    "/api/conversations",
    summary="Open the 1:1 conversation with one user (idempotent) or create a group",
    auth=Auth.REGISTERED,
    body=CREATE_BODY,
    responses={
        200: ok("the existing 1:1 conversation", CONVERSATION_DETAIL),
        201: ok("created", CONVERSATION_DETAIL),
        422: ERROR_RESPONSE,
    },
)
async def create_conversation() -> tuple[Response, int]:
    principal = current_principal()
    context = parley_context()
    body = await json_object()
    member_ids = [m for m in _uuid_list(body, "member_ids", allow_empty=False)]
    others = list(dict.fromkeys(m for m in member_ids if m != principal.user.id))
    title = body.get("title")
    if title is not None:
        title = _checked_text(title, "title", context.settings.messages.title_max_chars)
    if not others:
        raise invalid({"member_ids": ["must name at least one other user"]})
    store = context.stores.conversations
    try:
        if len(others) == 1 and title is None:
            conversation, created = await store.open_direct(principal.user.id, others[0])
        else:
            conversation, created = await store.create_group(principal.user.id, title, others), True
    except UnknownUsers as exc:
        raise invalid({"member_ids": [f"unknown user {exc.user_ids[0]}"]}) from None
    members = await store.members(conversation.id)
    detail = detail_json(conversation, members)
    if created:
        # Every member's devices (the creator's other ones too) show the new conversation.
        await context.runtime.chat.members_added(
            conversation.id, [m.user_id for m in members], detail
        )
    return jsonify(detail), 201 if created else 200


@endpoint(
    blueprint,
    "GET",
    "/api/conversations",
    summary="My conversations, newest activity first, with the last message and unread count",
    auth=Auth.REGISTERED,
    query=PAGE_QUERY,
    responses={200: ok("a page", page_of(SUMMARY)), 422: ERROR_RESPONSE},
)
async def list_conversations() -> Response:
    principal = current_principal()
    context = parley_context()
    limits = context.settings.messages
    limit = query_int("limit", limits.page_default_limit, minimum=1, maximum=limits.page_max_limit)
    before = decode_cursor(request.args.get("before"))
    summaries = await context.stores.conversations.list_for_user(
        principal.user.id, limit=limit, before=before
    )
    next_cursor = None
    if len(summaries) == limit:
        last = summaries[-1]
        next_cursor = encode_cursor(last.activity_at, last.conversation.id)
    return jsonify({"data": [summary_json(s) for s in summaries], "next_cursor": next_cursor})


@endpoint(
    blueprint,
    "GET",
    "/api/conversations/<uuid:conversation_id>",
    summary="One conversation with its members",
    auth=Auth.REGISTERED,
    responses={200: ok("the conversation", CONVERSATION_DETAIL)},
)
async def get_conversation(conversation_id: uuid.UUID) -> Response:
    _, conversation, members = await membership(conversation_id)
    return jsonify(detail_json(conversation, members))


@endpoint(
    blueprint,
    "POST",
    "/api/conversations/<uuid:conversation_id>/members",
    summary="Invite users to a group (owners only)",
    auth=Auth.REGISTERED,
    body=MEMBERS_BODY,
    responses={
        200: ok("the members now", CONVERSATION_DETAIL),
        403: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
    },
)
async def add_members(conversation_id: uuid.UUID) -> Response:
    principal, conversation, members = await membership(conversation_id)
    body = await json_object()
    user_ids = _uuid_list(body, "user_ids", allow_empty=False)
    if conversation.kind == "direct":
        raise ApiError(403, "forbidden", "a 1:1 conversation cannot get more members")
    if not _is_owner(principal, members):
        raise ApiError(403, "forbidden", "only owners invite members")
    context = parley_context()
    try:
        added = await context.stores.conversations.add_members(conversation_id, user_ids)
    except UnknownUsers as exc:
        raise invalid({"user_ids": [f"unknown user {exc.user_ids[0]}"]}) from None
    members = await context.stores.conversations.members(conversation_id)
    detail = detail_json(conversation, members)
    await context.runtime.chat.members_added(conversation_id, added, detail)
    return jsonify(detail)


@endpoint(
    blueprint,
    "DELETE",
    "/api/conversations/<uuid:conversation_id>/members/<uuid:user_id>",
    summary="Remove a member (owners), or leave (yourself)",
    auth=Auth.REGISTERED,
    responses={204: NO_CONTENT, 403: ERROR_RESPONSE},
)
async def remove_member(conversation_id: uuid.UUID, user_id: uuid.UUID) -> tuple[str, int]:
    principal, conversation, members = await membership(conversation_id)
    may_remove_others = conversation.kind == "group" and _is_owner(principal, members)
    if user_id != principal.user.id and not may_remove_others:
        raise ApiError(403, "forbidden", "only owners remove other members")
    if not any(m.user_id == user_id for m in members):
        raise not_found("no such member")
    context = parley_context()
    await context.stores.conversations.remove_member(conversation_id, user_id)
    # Before the response: nothing sent after it reaches the removed member's sockets.
    await context.runtime.chat.member_removed(conversation_id, user_id)
    return "", 204


def _is_owner(principal: Principal, members: list[Member]) -> bool:
    return any(m.user_id == principal.user.id and m.role == "owner" for m in members)


@endpoint(
    blueprint,
    "GET",
    "/api/conversations/<uuid:conversation_id>/messages",
    summary="History: the newest messages (or before before_seq), or catch-up after after_seq",
    auth=Auth.REGISTERED,
    query=[
        query_parameter("limit", {"type": "integer", "minimum": 1}, "how many (default 15)"),
        query_parameter("before_seq", {"type": "integer", "minimum": 0}, "older than this seq"),
        query_parameter("after_seq", {"type": "integer", "minimum": 0}, "newer than this seq"),
    ],
    responses={
        200: ok(
            "newest first (before_seq) or oldest first (after_seq)",
            obj(
                {
                    "data": {"type": "array", "items": MESSAGE},
                    "next_before_seq": {"type": ["integer", "null"]},
                }
            ),
        ),
        422: ERROR_RESPONSE,
    },
)
async def history(conversation_id: uuid.UUID) -> Response:
    await membership(conversation_id)
    context = parley_context()
    limits = context.settings.messages
    limit = query_int(
        "limit", limits.history_default_limit, minimum=1, maximum=limits.history_max_limit
    )
    before_seq = query_optional_int("before_seq")
    after_seq = query_optional_int("after_seq")
    if before_seq is not None and after_seq is not None:
        raise invalid({"after_seq": ["cannot be combined with before_seq"]})
    messages = context.stores.messages
    if after_seq is not None:
        rows = await messages.after(conversation_id, after_seq=after_seq, limit=limit)
        next_before = None
    else:
        rows = await messages.before(conversation_id, limit=limit, before_seq=before_seq)
        next_before = rows[-1].seq if len(rows) == limit and rows[-1].seq > 1 else None
    return jsonify({"data": [message_payload(m) for m in rows], "next_before_seq": next_before})


@endpoint(
    blueprint,
    "POST",
    "/api/conversations/<uuid:conversation_id>/messages",
    summary="Send a message (acknowledged after commit; a resent client_id returns the original)",
    auth=Auth.REGISTERED,
    body=SEND_BODY,
    responses={
        200: ok("the original message of a resent client_id", MESSAGE),
        201: ok("stored", MESSAGE),
        422: ERROR_RESPONSE,
        503: ERROR_RESPONSE,
    },
)
async def send_message(conversation_id: uuid.UUID) -> tuple[Response, int]:
    principal = current_principal()
    context = parley_context()
    body = await json_object()
    fields = validate_new_message(
        body.get("body"), body.get("client_id"), max_chars=context.settings.messages.body_max_chars
    )
    if isinstance(fields, dict):
        raise invalid(fields)
    try:
        written = await context.runtime.chat.send(
            conversation_id, principal.user.id, fields.body, fields.client_id
        )
    except NotAMember:
        raise not_found("no such conversation") from None
    except ChatUnavailable as exc:
        raise unavailable(str(exc)) from None
    return jsonify(message_payload(written.message)), 200 if written.duplicate else 201


@endpoint(
    blueprint,
    "PATCH",
    "/api/conversations/<uuid:conversation_id>/messages/<int:seq>",
    summary="Edit one of your messages",
    auth=Auth.REGISTERED,
    body=EDIT_BODY,
    responses={200: ok("edited", MESSAGE), 422: ERROR_RESPONSE},
)
async def edit_message(conversation_id: uuid.UUID, seq: int) -> Response:
    principal, _, _ = await membership(conversation_id)
    context = parley_context()
    body = await json_object()
    text = _checked_text(body.get("body"), "body", context.settings.messages.body_max_chars)
    message = await context.stores.messages.edit(conversation_id, seq, principal.user.id, text)
    if message is None:
        raise not_found("no such message of yours")
    await context.runtime.chat.publish_change(message, "message_edited")
    return jsonify(message_payload(message))


@endpoint(
    blueprint,
    "DELETE",
    "/api/conversations/<uuid:conversation_id>/messages/<int:seq>",
    summary="Delete one of your messages (a tombstone keeps its seq)",
    auth=Auth.REGISTERED,
    responses={200: ok("the tombstone", MESSAGE)},
)
async def delete_message(conversation_id: uuid.UUID, seq: int) -> Response:
    principal, _, _ = await membership(conversation_id)
    context = parley_context()
    message = await context.stores.messages.tombstone(conversation_id, seq, principal.user.id)
    if message is None:
        raise not_found("no such message of yours")
    await context.runtime.chat.publish_change(message, "message_deleted")
    return jsonify(message_payload(message))


@endpoint(
    blueprint,
    "POST",
    "/api/conversations/<uuid:conversation_id>/read",
    summary="Move my read marker forward to seq",
    auth=Auth.REGISTERED,
    body=READ_BODY,
    responses={
        200: ok("the marker now", obj({"last_read_seq": {"type": "integer"}})),
        422: ERROR_RESPONSE,
    },
)
async def mark_read(conversation_id: uuid.UUID) -> Response:
    principal, _, _ = await membership(conversation_id)
    body = await json_object()
    seq = body.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= 2**62:
        raise invalid({"seq": ["must be a non-negative integer"]})
    context = parley_context()
    marker = await context.stores.conversations.mark_read(conversation_id, principal.user.id, seq)
    if marker is None:
        raise not_found("no such conversation")
    await context.runtime.chat.publish_read(conversation_id, principal.user.id, marker)
    return jsonify({"last_read_seq": marker})


@endpoint(
    blueprint,
    "POST",
    "/api/conversations/<uuid:conversation_id>/channel_token",
    summary="A short-lived token that lets a socket join only this conversation",
    auth=Auth.REGISTERED,
    responses={200: ok("the token", obj({"token": {"type": "string"}, "expires_at": TIME}))},
)
async def channel_token(conversation_id: uuid.UUID) -> Response:
    principal, _, _ = await membership(conversation_id)
    token, expires_at = parley_context().tokens.issue_channel(
        principal.user.id, conversation_id, principal.user.token_version
    )
    return jsonify({"token": token, "expires_at": iso(expires_at)})
