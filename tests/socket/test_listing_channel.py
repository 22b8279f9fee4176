"""`listing:{id}` and the seller's `listing_reply` over real sockets (DESIGN §5,
docs/marketplace.md): replies, edits and sales reach watchers; hiding stops everybody but the
seller and staff; deleting stops everybody; a hidden listing refuses other joins.

Listings are made in the store; every change goes through the REST API (what publishes), with
the users' access tokens.
"""

from __future__ import annotations

from typing import Any

import httpx

from parley.store.listing_records import NewListing
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime, User


def bearer(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


async def listing_of(realtime: Realtime, seller: User) -> str:
    listing = await realtime.context.stores.listings.create(
        seller.id, NewListing("Blue hatchback", "Volkswagen", "Golf", 2017, 850_000)
    )
    return str(listing.id)


async def rest(realtime: Realtime, method: str, path: str, user: User, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=realtime.http, timeout=30) as client:
        return await client.request(method, path, headers=bearer(user), **kw)


async def test_a_reply_reaches_the_seller_and_every_watcher(realtime: Realtime) -> None:
    seller, buyer, watcher = await realtime.users(3)
    listing_id = await listing_of(realtime, seller)
    topic = f"listing:{listing_id}"
    async with (
        open_phoenix_client(realtime.url, token=seller.token) as cs,
        open_phoenix_client(realtime.url, token=watcher.token) as cw,
    ):
        assert (await cs.join(f"user:{seller.id}")).ok
        assert (await cw.join(topic)).ok
        # The seller answering in their own thread tells watchers, not the seller.
        own = await rest(
            realtime, "POST", f"/api/listings/{listing_id}/replies", seller, json={"body": "ask!"}
        )
        assert own.status_code == 201
        reply = await rest(
            realtime,
            "POST",
            f"/api/listings/{listing_id}/replies",
            buyer,
            json={"body": "Still for sale?"},
        )
        assert reply.status_code == 201
        told = await cs.receive("listing_reply", f"user:{seller.id}")
        # The first listing_reply is the buyer's: the seller's own reply was not sent there.
        assert told.payload == {"listing_id": listing_id, "reply": reply.json()}
        first = await cw.receive("reply", topic)
        second = await cw.receive("reply", topic)
        assert [first.payload["reply"]["body"], second.payload] == [
            "ask!",
            {"listing_id": listing_id, "reply": reply.json()},
        ]


async def test_edits_and_sales_reach_watchers(realtime: Realtime) -> None:
    seller, watcher = await realtime.users(2)
    listing_id = await listing_of(realtime, seller)
    topic = f"listing:{listing_id}"
    async with open_phoenix_client(realtime.url, token=watcher.token) as cw:
        assert (await cw.join(topic)).ok
        path = f"/api/listings/{listing_id}"
        edited = await rest(realtime, "PATCH", path, seller, json={"price_cents": 799_000})
        assert edited.status_code == 200
        updated = await cw.receive("updated", topic)
        assert updated.payload == {"listing": edited.json()}
        sold = await rest(realtime, "PATCH", path, seller, json={"status": "sold"})
        message = await cw.receive("sold", topic)
        assert message.payload == {"listing": sold.json()}
        assert message.payload["listing"]["status"] == "sold"


async def test_hiding_stops_other_watchers_and_deleting_stops_everybody(
    realtime: Realtime,
) -> None:
    seller, watcher, stranger = await realtime.users(3)
    moderator = await realtime.user("moderator")
    listing_id = await listing_of(realtime, seller)
    topic = f"listing:{listing_id}"
    async with (
        open_phoenix_client(realtime.url, token=seller.token) as cs,
        open_phoenix_client(realtime.url, token=watcher.token) as cw,
        open_phoenix_client(realtime.url, token=moderator.token) as cm,
        open_phoenix_client(realtime.url, token=stranger.token) as cx,
    ):
        for client in (cs, cw, cm):
            assert (await client.join(topic)).ok
        hidden = await rest(
            realtime, "POST", f"/api/listings/{listing_id}/hide", moderator, json={"reason": "x"}
        )
        assert hidden.status_code == 200
        await cw.receive("phx_close", topic)
        for client in (cs, cm):
            seen = await client.receive("hidden", topic)
            assert seen.payload == {"listing": hidden.json()}
        refused = await cx.join(topic)
        assert (refused.status, refused.response) == ("error", {"reason": "unauthorized"})
        deleted = await rest(realtime, "DELETE", f"/api/listings/{listing_id}", seller)
        assert deleted.status_code == 204
        for client in (cs, cm):
            await client.receive("phx_close", topic)
        refused = await cs.join(topic)
        assert refused.response == {"reason": "unauthorized"}


async def test_joins_need_a_listing_that_exists(realtime: Realtime) -> None:
    (user,) = await realtime.users(1)
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        for topic in ("listing:nope", "listing:00000000-0000-0000-0000-000000000000"):
            reply = await client.join(topic)
            assert reply.response == {"reason": "unauthorized"}, topic
