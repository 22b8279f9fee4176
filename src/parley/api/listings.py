"""The marketplace over REST (DESIGN §4.1): listings, search, replies, moderation, contact.

Thin handlers: the field rules are `marketplace.rules`, the search parameters
`marketplace.search`, who may do what `marketplace.permissions` (applied to the request by
`api.listing_access`: the least role of each route, ownership, what answers 404), the documented
shapes `api.listing_schemas`, the SQL `store.listings`, and what is told to sellers and watchers
`marketplace.events`. A hidden listing answers 404 to everybody but its seller and staff, as a
deleted one does to everybody.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response, jsonify, request

from parley.actors.chat import ChatUnavailable, NotAMember, message_payload
from parley.actors.message_rules import NewMessageFields, validate_new_message
from parley.api.body import json_object, query_int
from parley.api.context import parley_context
from parley.api.conversations import detail_json
from parley.api.endpoint import (
    ERROR_RESPONSE,
    NO_CONTENT,
    current_principal,
    endpoint,
    ok,
    optional_principal,
)
from parley.api.errors import ApiError, invalid, not_found, unauthorized
from parley.api.listing_access import (
    auth_for,
    level_for,
    owns,
    require,
    visible_listing,
    visible_reply,
)
from parley.api.listing_schemas import (
    CONTACT,
    CONTACT_BODY,
    CREATE_BODY,
    DELETE_QUERY,
    LISTING,
    OPTIONAL_REASON_BODY,
    PATCH_BODY,
    REASON_BODY,
    REPLY,
    REPLY_BODY,
    SEARCH_QUERY,
)
from parley.api.pagination import PAGE_QUERY, decode_cursor, encode_cursor
from parley.api.schemas import page_of
from parley.marketplace import rules
from parley.marketplace.events import ListingEvents, listing_payload, reply_payload
from parley.marketplace.permissions import Action, allowed
from parley.marketplace.search import Position, SearchLimits, parse_search
from parley.marketplace.search import encode_cursor as encode_search_cursor
from parley.store.audit import AuditEntry
from parley.store.conversations import UnknownUsers
from parley.store.listing_search import SearchTimeout, sort_key

blueprint = Blueprint("listings", __name__)


def _this_year() -> int:
    return datetime.now(UTC).year


def _events() -> ListingEvents:
    return ListingEvents(parley_context().runtime.pubsub)


async def _optional_body() -> dict[str, Any]:
    """The JSON object body, or {} when none was sent."""
    if not await request.get_data(cache=True):
        return {}
    return await json_object()


def _reason(value: Any, *, required: bool) -> str | None:
    problems = rules.check_reason(
        value, parley_context().settings.marketplace.reason_max_chars, required=required
    )
    if problems:
        raise invalid({"reason": problems})
    return value.strip() if isinstance(value, str) else None


def _page_limit() -> int:
    limits = parley_context().settings.marketplace
    return query_int("limit", limits.page_default_limit, minimum=1, maximum=limits.page_max_limit)


# -- listings ------------------------------------------------------------------------------------


@endpoint(
    blueprint,
    "GET",
    "/api/listings",
    summary="Search listings: filters, full text (q), sort, keyset pages",
    auth=auth_for(Action.SEARCH),
    optional_auth=True,
    query=SEARCH_QUERY,
    responses={
        200: ok("a page of listings", page_of(LISTING)),
        403: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
        503: ERROR_RESPONSE,
    },
)
async def search_listings() -> Response:
    principal = optional_principal()
    context = parley_context()
    limits = context.settings.marketplace
    query = parse_search(
        request.args.to_dict(flat=False),
        this_year=_this_year(),
        limits=SearchLimits(
            limits.page_default_limit,
            limits.page_max_limit,
            limits.q_max_chars,
            limits.relevance_window,
        ),
    )
    if isinstance(query, dict):
        raise invalid(query)
    if query.sort == "relevance" and query.as_of is None:
        # The first page fixes the set that later pages rank (they carry this in the cursor).
        query = dataclasses.replace(query, as_of=datetime.now(UTC))
    if query.status == "hidden":
        if principal is None:
            raise unauthorized()
        require(Action.SEE_HIDDEN, principal, is_owner=owns(principal, query.seller_id))
    try:
        found = await context.stores.listings.search(
            query, time_bound=limits.search_timeout_seconds
        )
    except SearchTimeout as exc:
        raise ApiError(503, "unavailable", str(exc), headers={"Retry-After": "1"}) from None
    next_cursor = None
    if len(found) == query.limit:
        position = Position(sort_key(found[-1], query.sort), query.as_of)
        next_cursor = encode_search_cursor(query.sort, position)
    return jsonify({"data": [listing_payload(x) for x in found], "next_cursor": next_cursor})


@endpoint(
    blueprint,
    "POST",
    "/api/listings",
    summary="Put a car up for sale (registered users who are not banned)",
    auth=auth_for(Action.CREATE),
    body=CREATE_BODY,
    responses={201: ok("created", LISTING), 422: ERROR_RESPONSE},
)
async def create_listing() -> tuple[Response, int]:
    principal = current_principal()
    require(Action.CREATE, principal, is_owner=False)
    fields = rules.validate_new_listing(await json_object(), this_year=_this_year())
    if isinstance(fields, dict):
        raise invalid(fields)
    listing = await parley_context().stores.listings.create(principal.user.id, fields)
    return jsonify(listing_payload(listing)), 201


@endpoint(
    blueprint,
    "GET",
    "/api/listings/<uuid:listing_id>",
    summary="One listing (a hidden one only to its seller and moderators)",
    auth=auth_for(Action.READ),
    optional_auth=True,
    responses={200: ok("the listing", LISTING)},
)
async def get_listing(listing_id: uuid.UUID) -> Response:
    return jsonify(listing_payload(await visible_listing(listing_id, optional_principal())))


@endpoint(
    blueprint,
    "PATCH",
    "/api/listings/<uuid:listing_id>",
    summary="Edit a listing or mark it sold (its seller only)",
    auth=auth_for(Action.EDIT),
    body=PATCH_BODY,
    responses={200: ok("the listing now", LISTING), 403: ERROR_RESPONSE, 422: ERROR_RESPONSE},
)
async def edit_listing(listing_id: uuid.UUID) -> Response:
    principal = current_principal()
    listing = await visible_listing(listing_id, principal)
    require(Action.EDIT, principal, is_owner=owns(principal, listing.seller.id))
    changes = rules.validate_listing_changes(await json_object(), this_year=_this_year())
    if isinstance(changes, dict):
        raise invalid(changes)
    updated = await parley_context().stores.listings.update(
        listing_id, principal.user.id, changes.values
    )
    if updated is None:
        raise not_found("no such listing")
    listing, status_before = updated
    _events().changed(listing, status_before)
    return jsonify(listing_payload(listing))


@endpoint(
    blueprint,
    "DELETE",
    "/api/listings/<uuid:listing_id>",
    summary="Delete a listing (its seller, or a moderator with a reason)",
    auth=auth_for(Action.DELETE),
    query=DELETE_QUERY,
    responses={204: NO_CONTENT, 403: ERROR_RESPONSE, 422: ERROR_RESPONSE},
)
async def delete_listing(listing_id: uuid.UUID) -> tuple[str, int]:
    principal = current_principal()
    listing = await visible_listing(listing_id, principal)
    is_owner = owns(principal, listing.seller.id)
    require(Action.DELETE, principal, is_owner=is_owner)
    audit = None
    if not is_owner:
        reason = _reason(request.args.get("reason"), required=True)
        audit = AuditEntry(principal.user.id, "listing.delete", "listing", str(listing.id), reason)
    deleted = await parley_context().stores.listings.delete(listing_id, audit)
    if deleted is None:
        raise not_found("no such listing")
    _events().deleted(deleted)
    return "", 204


async def _moderate_listing(listing_id: uuid.UUID, *, hidden: bool) -> Response:
    principal = current_principal()
    require(Action.HIDE, principal, is_owner=False)
    body = await (json_object() if hidden else _optional_body())
    reason = _reason(body.get("reason"), required=hidden)
    action = "listing.hide" if hidden else "listing.unhide"
    listing = await parley_context().stores.listings.set_hidden(
        listing_id,
        hidden=hidden,
        reason=reason,
        audit=AuditEntry(principal.user.id, action, "listing", str(listing_id), reason),
    )
    if listing is None:
        raise not_found("no such listing")
    _events().moderated(listing)
    return jsonify(listing_payload(listing))


@endpoint(
    blueprint,
    "POST",
    "/api/listings/<uuid:listing_id>/hide",
    summary="Hide a listing from everybody but its seller and moderators (with a reason)",
    auth=auth_for(Action.HIDE),
    body=REASON_BODY,
    responses={200: ok("the listing, hidden", LISTING), 422: ERROR_RESPONSE},
)
async def hide_listing(listing_id: uuid.UUID) -> Response:
    return await _moderate_listing(listing_id, hidden=True)


@endpoint(
    blueprint,
    "POST",
    "/api/listings/<uuid:listing_id>/unhide",
    summary="Show a hidden listing again (a reason is optional)",
    auth=auth_for(Action.HIDE),
    body=OPTIONAL_REASON_BODY,
    body_required=False,
    responses={200: ok("the listing, shown", LISTING), 422: ERROR_RESPONSE},
)
async def unhide_listing(listing_id: uuid.UUID) -> Response:
    return await _moderate_listing(listing_id, hidden=False)


# -- replies -------------------------------------------------------------------------------------


@endpoint(
    blueprint,
    "GET",
    "/api/listings/<uuid:listing_id>/replies",
    summary="The public thread of a listing, oldest first (deleted replies as tombstones)",
    auth=auth_for(Action.READ_REPLIES),
    optional_auth=True,
    query=PAGE_QUERY,
    responses={200: ok("a page of replies", page_of(REPLY)), 422: ERROR_RESPONSE},
)
async def list_replies(listing_id: uuid.UUID) -> Response:
    principal = optional_principal()
    await visible_listing(listing_id, principal)
    limit = _page_limit()
    after = decode_cursor(request.args.get("before"))
    replies = await parley_context().stores.listings.replies(
        listing_id,
        limit=limit,
        after=after,
        viewer_id=principal.user.id if principal else None,
        see_hidden=allowed(Action.SEE_HIDDEN_REPLY, level_for(principal), is_owner=False),
    )
    next_cursor = None
    if len(replies) == limit:
        next_cursor = encode_cursor(replies[-1].created_at, replies[-1].id)
    return jsonify({"data": [reply_payload(r) for r in replies], "next_cursor": next_cursor})


@endpoint(
    blueprint,
    "POST",
    "/api/listings/<uuid:listing_id>/replies",
    summary="Reply to a listing; its seller hears of it on user:{seller} (listing_reply)",
    auth=auth_for(Action.REPLY),
    body=REPLY_BODY,
    responses={201: ok("the reply", REPLY), 422: ERROR_RESPONSE},
)
async def add_reply(listing_id: uuid.UUID) -> tuple[Response, int]:
    principal = current_principal()
    await visible_listing(listing_id, principal)
    require(Action.REPLY, principal, is_owner=False)
    body = (await json_object()).get("body")
    problems = rules.check_reply_body(body)
    if problems or not isinstance(body, str):
        raise invalid({"body": problems})
    added = await parley_context().stores.listings.add_reply(listing_id, principal.user.id, body)
    if added is None:
        raise not_found("no such listing")
    reply, listing = added
    _events().reply_added(listing, reply)
    return jsonify(reply_payload(reply)), 201


@endpoint(
    blueprint,
    "DELETE",
    "/api/listings/<uuid:listing_id>/replies/<uuid:reply_id>",
    summary="Delete a reply (its author, or a moderator with a reason): a tombstone stays",
    auth=auth_for(Action.DELETE_REPLY),
    query=DELETE_QUERY,
    responses={204: NO_CONTENT, 403: ERROR_RESPONSE, 422: ERROR_RESPONSE},
)
async def delete_reply(listing_id: uuid.UUID, reply_id: uuid.UUID) -> tuple[str, int]:
    principal = current_principal()
    listing = await visible_listing(listing_id, principal)
    reply = await visible_reply(listing, reply_id, principal)
    is_owner = owns(principal, reply.author.id if reply.author else None)
    require(Action.DELETE_REPLY, principal, is_owner=is_owner)
    audit = None
    if not is_owner:
        reason = _reason(request.args.get("reason"), required=True)
        audit = AuditEntry(principal.user.id, "reply.delete", "reply", str(reply.id), reason)
    tombstone = await parley_context().stores.listings.delete_reply(listing_id, reply_id, audit)
    if tombstone is None:
        raise not_found("no such reply")
    _events().reply_deleted(tombstone)
    return "", 204


async def _moderate_reply(listing_id: uuid.UUID, reply_id: uuid.UUID, *, hidden: bool) -> Response:
    principal = current_principal()
    require(Action.HIDE_REPLY, principal, is_owner=False)
    listing = await visible_listing(listing_id, principal)
    body = await (json_object() if hidden else _optional_body())
    reason = _reason(body.get("reason"), required=hidden)
    action = "reply.hide" if hidden else "reply.unhide"
    reply = await parley_context().stores.listings.set_reply_hidden(
        listing_id,
        reply_id,
        hidden=hidden,
        reason=reason,
        audit=AuditEntry(principal.user.id, action, "reply", str(reply_id), reason),
    )
    if reply is None:
        raise not_found("no such reply")
    _events().reply_moderated(listing, reply)
    return jsonify(reply_payload(reply))


@endpoint(
    blueprint,
    "POST",
    "/api/listings/<uuid:listing_id>/replies/<uuid:reply_id>/hide",
    summary="Hide a reply from everybody but its author and moderators (with a reason)",
    auth=auth_for(Action.HIDE_REPLY),
    body=REASON_BODY,
    responses={200: ok("the reply, hidden", REPLY), 422: ERROR_RESPONSE},
)
async def hide_reply(listing_id: uuid.UUID, reply_id: uuid.UUID) -> Response:
    return await _moderate_reply(listing_id, reply_id, hidden=True)


@endpoint(
    blueprint,
    "POST",
    "/api/listings/<uuid:listing_id>/replies/<uuid:reply_id>/unhide",
    summary="Show a hidden reply again (a reason is optional)",
    auth=auth_for(Action.HIDE_REPLY),
    body=OPTIONAL_REASON_BODY,
    body_required=False,
    responses={200: ok("the reply, shown", REPLY), 422: ERROR_RESPONSE},
)
async def unhide_reply(listing_id: uuid.UUID, reply_id: uuid.UUID) -> Response:
    return await _moderate_reply(listing_id, reply_id, hidden=False)


# -- contact the seller --------------------------------------------------------------------------


@endpoint(
    blueprint,
    "POST",
    "/api/listings/<uuid:listing_id>/contact",
    summary="Open (or return) my 1:1 conversation with the seller, with an optional first "
    "message; it goes on in the chat (conversation:{id}, private_chat:{id})",
    auth=auth_for(Action.CONTACT),
    body=CONTACT_BODY,
    body_required=False,
    responses={
        200: ok("the existing conversation", CONTACT),
        201: ok("the conversation, new", CONTACT),
        403: ERROR_RESPONSE,
        409: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
        503: ERROR_RESPONSE,
    },
)
async def contact_seller(listing_id: uuid.UUID) -> tuple[Response, int]:
    principal = current_principal()
    listing = await visible_listing(listing_id, principal)
    require(Action.CONTACT, principal, is_owner=owns(principal, listing.seller.id))
    context = parley_context()
    body = await _optional_body()
    first: NewMessageFields | None = None
    if body.get("body") is not None or body.get("client_id") is not None:
        checked = validate_new_message(
            body.get("body"),
            body.get("client_id"),
            max_chars=context.settings.messages.body_max_chars,
        )
        if isinstance(checked, dict):
            raise invalid(checked)
        first = checked
    conversations = context.stores.conversations
    try:
        conversation, created = await conversations.open_direct(
            principal.user.id, listing.seller.id
        )
    except UnknownUsers:
        raise ApiError(409, "conflict", "the seller cannot be contacted") from None
    chat = context.runtime.chat
    if created:
        members = await conversations.members(conversation.id)
        await chat.members_added(
            conversation.id, [m.user_id for m in members], detail_json(conversation, members)
        )
    message = None
    if first is not None:
        try:
            written = await chat.send(
                conversation.id, principal.user.id, first.body, first.client_id
            )
        except NotAMember:
            raise not_found("no such conversation") from None
        except ChatUnavailable as exc:
            raise ApiError(503, "unavailable", str(exc), headers={"Retry-After": "1"}) from None
        message = message_payload(written.message)
    found = await conversations.get_for_member(conversation.id, principal.user.id)
    assert found is not None
    detail = detail_json(*found)
    return jsonify({"conversation": detail, "message": message}), 201 if created else 200
