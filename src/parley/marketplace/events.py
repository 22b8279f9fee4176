"""What the marketplace tells sellers and watchers, and the JSON of listings and replies.

The JSON forms are the same over REST and on sockets (`listing_payload`, `reply_payload`). Events,
published after the change is committed (DESIGN §5):

* `user:{seller}` `listing_reply` {listing_id, reply}: somebody else replied to their listing;
* `listing:{id}` `reply` {listing_id, reply}; `updated` {listing} (an edit, an unhide); `sold`
  {listing} (the seller marked it sold); `reply_deleted` {listing_id, reply} (the tombstone);
  `reply_hidden` {listing_id, reply_id};
* `listing:{id}` `hidden` {listing}: watchers who are neither its seller nor staff stop watching
  (their channel closes; `ListingChannel`), the others get it; `deleted` {id}: every watcher's
  channel closes.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from parley.actors.chat_events import user_topic
from parley.actors.realtime.pubsub import PubSub
from parley.isotime import iso
from parley.store.listing_records import Listing, PublicUser, Reply

LISTING_REPLY: Final = "listing_reply"
REPLY: Final = "reply"
UPDATED: Final = "updated"
SOLD: Final = "sold"
HIDDEN: Final = "hidden"
DELETED: Final = "deleted"
REPLY_DELETED: Final = "reply_deleted"
REPLY_HIDDEN: Final = "reply_hidden"


def listing_topic(listing_id: uuid.UUID) -> str:
    return f"listing:{listing_id}"


def person_payload(person: PublicUser) -> dict[str, Any]:
    return {"id": str(person.id), "username": person.username, "display_name": person.display_name}


def listing_payload(listing: Listing) -> dict[str, Any]:
    """A listing as clients see it: `status` is "hidden" while a moderator hides it."""
    return {
        "id": str(listing.id),
        "seller": person_payload(listing.seller),
        "title": listing.title,
        "make": listing.make,
        "model": listing.model,
        "year": listing.year,
        "price_cents": listing.price_cents,
        "currency": listing.currency,
        "mileage_km": listing.mileage_km,
        "description": listing.description,
        "location": listing.location,
        "status": listing.shown_status,
        "hidden_reason": listing.hidden_reason if listing.hidden_at is not None else None,
        "reply_count": listing.reply_count,
        "created_at": iso(listing.created_at),
        "updated_at": iso(listing.updated_at),
    }


def reply_payload(reply: Reply) -> dict[str, Any]:
    """A reply; a deleted one is a tombstone (`body` "", `deleted_at` set)."""
    return {
        "id": str(reply.id),
        "listing_id": str(reply.listing_id),
        "author": person_payload(reply.author) if reply.author else None,
        "body": reply.body,
        "hidden": reply.hidden_at is not None,
        "created_at": iso(reply.created_at),
        "deleted_at": iso(reply.deleted_at),
    }


class ListingEvents:
    """Publishes the marketplace's events on the pubsub it is handed."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    def reply_added(self, listing: Listing, reply: Reply) -> None:
        payload = {"listing_id": str(listing.id), "reply": reply_payload(reply)}
        if reply.author is None or reply.author.id != listing.seller.id:
            self._pubsub.publish(user_topic(listing.seller.id), LISTING_REPLY, payload)
        self._pubsub.publish(listing_topic(listing.id), REPLY, payload)

    def changed(self, listing: Listing, status_before: str) -> None:
        """An edit by the seller: `sold` when it became sold, else `updated`."""
        sold = listing.status == "sold" and status_before != "sold"
        payload = {"listing": listing_payload(listing)}
        self._pubsub.publish(listing_topic(listing.id), SOLD if sold else UPDATED, payload)

    def moderated(self, listing: Listing) -> None:
        """Hidden (`hidden`) or unhidden (`updated`) by a moderator."""
        event = HIDDEN if listing.hidden_at is not None else UPDATED
        payload = {"listing": listing_payload(listing)}
        self._pubsub.publish(listing_topic(listing.id), event, payload)

    def deleted(self, listing: Listing) -> None:
        self._pubsub.publish(listing_topic(listing.id), DELETED, {"id": str(listing.id)})

    def reply_deleted(self, reply: Reply) -> None:
        self._pubsub.publish(
            listing_topic(reply.listing_id),
            REPLY_DELETED,
            {"listing_id": str(reply.listing_id), "reply": reply_payload(reply)},
        )

    def reply_moderated(self, listing: Listing, reply: Reply) -> None:
        """A reply hidden (`reply_hidden`) or unhidden (`reply` again, not to the seller)."""
        topic = listing_topic(reply.listing_id)
        if reply.hidden_at is not None:
            hidden = {"listing_id": str(reply.listing_id), "reply_id": str(reply.id)}
            self._pubsub.publish(topic, REPLY_HIDDEN, hidden)
        else:
            shown = {"listing_id": str(listing.id), "reply": reply_payload(reply)}
            self._pubsub.publish(topic, REPLY, shown)
