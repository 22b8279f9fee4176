"""Who may see and change which listing or reply, asked of `marketplace.permissions` per request.

The least role of each route is declared from the permission table (`auth_for`); ownership and the
roles above it are asked of the same table here (`require`), so a rule lives in one place. What the
caller may not see answers 404 as if it did not exist: a hidden listing or reply to everybody but
its author and staff, a deleted one to everybody.
"""

from __future__ import annotations

import uuid

from parley.api.context import parley_context
from parley.api.endpoint import Auth, Principal
from parley.api.errors import forbidden, not_found
from parley.marketplace.permissions import RULES, Action, Level, allowed, level_of
from parley.store.listing_records import Listing, Reply


def auth_for(action: Action) -> Auth:
    """The least role of a route, as the permission table has it."""
    return Auth(int(RULES[action].level))


def level_for(principal: Principal | None) -> Level:
    """The caller's level in the permission table (anonymous without a principal)."""
    return level_of(principal.user.role if principal else None)


def require(action: Action, principal: Principal | None, *, is_owner: bool) -> None:
    """Raise 403, with the table's refusal, unless the caller may do `action`."""
    if not allowed(action, level_for(principal), is_owner=is_owner):
        raise forbidden(RULES[action].refusal)


def owns(principal: Principal | None, owner_id: uuid.UUID | None) -> bool:
    """Whether the caller is the seller or author `owner_id` (None: a deleted account)."""
    return principal is not None and owner_id is not None and principal.user.id == owner_id


async def visible_listing(listing_id: uuid.UUID, principal: Principal | None) -> Listing:
    """The listing, if it exists and this caller may see it (hidden: its seller and staff)."""
    listing = await parley_context().stores.listings.get(listing_id)
    if listing is None:
        raise not_found("no such listing")
    seen = listing.hidden_at is None or allowed(
        Action.SEE_HIDDEN, level_for(principal), is_owner=owns(principal, listing.seller.id)
    )
    if not seen:
        raise not_found("no such listing")
    return listing


async def visible_reply(listing: Listing, reply_id: uuid.UUID, principal: Principal) -> Reply:
    """The reply, if it is not deleted and this caller may see it (hidden: its author and staff)."""
    reply = await parley_context().stores.listings.get_reply(listing.id, reply_id)
    if reply is None or reply.deleted_at is not None:
        raise not_found("no such reply")
    author_id = reply.author.id if reply.author else None
    if reply.hidden_at is not None and not allowed(
        Action.SEE_HIDDEN_REPLY, level_for(principal), is_owner=owns(principal, author_id)
    ):
        raise not_found("no such reply")
    return reply
