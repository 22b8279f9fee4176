"""The marketplace over REST against a running server (DESIGN §4.1): search, listings, replies,
moderation and its audit log, contacting a seller, and bad input of every kind."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from parley.demo import generate_listings
from parley.store.listing_search import ListingQuery
from tests.api.account_helpers import make_admin, server_with
from tests.api.conftest import Account, register

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from parley.service import RunningServer

NEXT_YEAR = datetime.now(UTC).year + 1


def car(**fields: Any) -> dict[str, Any]:
    base = {
        "title": "Reliable family car",
        "make": "Toyota",
        "model": "Camry",
        "year": 2015,
        "price_cents": 1_200_000,
        "description": "One owner, full service history.",
    }
    return {**base, **fields}


async def post_listing(client: httpx.AsyncClient, seller: Account, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/listings", json=car(**fields), headers=seller.headers)
    assert response.status_code == 201, response.text
    listing: dict[str, Any] = response.json()
    return listing


async def search(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/listings", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def moderator(client: httpx.AsyncClient, server: RunningServer) -> Account:
    account = await register(client)
    await make_admin(server, account, role="moderator")
    return account


async def test_anonymous_search_by_make_years_prices_and_q_finds_exactly_the_matching_listings(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    seller = await register(client)
    mod = await moderator(client, server)
    leather = "Leather seats, one owner."
    first = await post_listing(client, seller, year=2012, price_cents=900_000, description=leather)
    second = await post_listing(
        client,
        seller,
        make="toyota",  # makes match in any case
        model="Corolla",
        year=2016,
        price_cents=1_500_000,
        title="Sunroof sedan",
        description="New sunroof. The seats are leather.",
    )
    # Each of these misses exactly one condition.
    await post_listing(client, seller, make="Honda", model="Accord", description=leather)
    await post_listing(client, seller, year=2008, description=leather)
    await post_listing(client, seller, year=2021, description=leather)
    await post_listing(client, seller, price_cents=400_000, description=leather)
    await post_listing(client, seller, price_cents=2_500_000, description=leather)
    cloth = await post_listing(client, seller, year=2014, description="Cloth seats.")
    # Matches every condition, but a moderator hid it: it is in no result.
    hidden = await post_listing(client, seller, year=2014, description=leather)
    response = await client.post(
        f"/api/listings/{hidden['id']}/hide", json={"reason": "spam"}, headers=mod.headers
    )
    assert response.status_code == 200

    filters = {
        "make": "TOYOTA",
        "year_min": 2010,
        "year_max": 2018,
        "price_min": 800_000,
        "price_max": 1_600_000,
    }
    # Words in any order, stemmed ("leathers" finds "leather", "seat" finds "seats").
    found = await search(client, **filters, q="leathers seat")
    assert {x["id"] for x in found} == {first["id"], second["id"]}
    found = await search(client, **filters)
    assert {x["id"] for x in found} == {first["id"], second["id"], cloth["id"]}
    for params in ({}, {"q": "leather"}, {"make": "toyota"}, {"seller_id": seller.id}):
        assert hidden["id"] not in {x["id"] for x in await search(client, **params)}
    assert (await client.get(f"/api/listings/{hidden['id']}")).status_code == 404


async def test_hidden_listings_are_seen_only_by_their_seller_and_moderators(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    seller, other = await register(client), await register(client)
    mod = await moderator(client, server)
    listing = await post_listing(client, seller)
    url = f"/api/listings/{listing['id']}"
    hide = await client.post(f"{url}/hide", json={"reason": "misleading"}, headers=mod.headers)
    assert hide.json()["status"] == "hidden"
    assert hide.json()["hidden_reason"] == "misleading"
    assert (await client.get(url)).status_code == 404
    assert (await client.get(url, headers=other.headers)).status_code == 404
    assert (await client.get(f"{url}/replies", headers=other.headers)).status_code == 404
    assert (await client.get(url, headers=seller.headers)).json()["status"] == "hidden"
    assert (await client.get(url, headers=mod.headers)).status_code == 200
    queue = await client.get("/api/listings", params={"status": "hidden"}, headers=mod.headers)
    assert [x["id"] for x in queue.json()["data"]] == [listing["id"]]
    own = await client.get(
        "/api/listings", params={"status": "hidden", "seller_id": seller.id}, headers=seller.headers
    )
    assert [x["id"] for x in own.json()["data"]] == [listing["id"]]
    refused = await client.get("/api/listings", params={"status": "hidden"}, headers=other.headers)
    assert refused.status_code == 403
    assert (await client.get("/api/listings", params={"status": "hidden"})).status_code == 401
    unhide = await client.post(f"{url}/unhide", headers=mod.headers)
    assert unhide.json()["status"] == "active"
    assert unhide.json()["hidden_reason"] is None
    assert (await client.get(url)).status_code == 200


async def test_keyset_pages_neither_repeat_nor_skip_while_listings_arrive(
    client: httpx.AsyncClient,
) -> None:
    seller = await register(client)
    prices = [500_000 + 10_000 * (i % 7) for i in range(25)]
    originals = {(await post_listing(client, seller, price_cents=p))["id"] for p in prices}
    posted = set(originals)
    for sort, key in (("relevance", 0), ("newest", None), ("price_asc", 1), ("price_desc", -1)):
        seen: list[dict[str, Any]] = []
        cursor = None
        existing = set(posted)
        while True:
            params: dict[str, Any] = {"sort": sort, "limit": 4}
            if sort == "relevance":
                params["q"] = "owner"
            if cursor:
                params["before"] = cursor
            page = (await client.get("/api/listings", params=params)).json()
            seen += page["data"]
            # A new listing arrives between pages: it belongs before the pages already read
            # (newest), anywhere (price), or after the ranked set (relevance): the pages go on
            # from where they were.
            posted.add((await post_listing(client, seller, price_cents=505_000))["id"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        ids = [x["id"] for x in seen]
        assert len(ids) == len(set(ids)), sort
        if key is None:
            stamps = [x["created_at"] for x in seen]
            assert stamps == sorted(stamps, reverse=True)
            assert set(ids) == existing  # the newer ones come before the first page
        elif key == 0:
            # Ranked as of the first page: what arrived later is not in the later pages.
            assert set(ids) == originals
        else:
            values = [x["price_cents"] * key for x in seen]
            assert values == sorted(values), sort
        assert originals <= set(ids), sort


async def test_q_ranks_the_best_match_first_and_reads_any_text_safely(
    client: httpx.AsyncClient,
) -> None:
    seller = await register(client)
    weak = await post_listing(
        client, seller, title="Estate car", description="Has a convertible roof box."
    )
    strong = await post_listing(
        client,
        seller,
        title="Convertible roadster",
        model="MX-5",
        make="Mazda",
        description="A convertible with a new roof; convertible fun all summer.",
    )
    found = await search(client, q="convertibles")
    assert [x["id"] for x in found] == [strong["id"], weak["id"]]
    assert [x["id"] for x in await search(client, q="roadster -estate")] == [strong["id"]]
    assert [x["id"] for x in await search(client, q='"convertible roadster"')] == [strong["id"]]
    for text in (
        "'; DROP TABLE listings; --",
        "^(a+)+$ .* [[:alpha:]] \\",
        "%_%",
        "a & b | !c <-> d:*",
        "))))((((",
        "🚗 ñ",
        "x" * 200,
    ):
        response = await client.get("/api/listings", params={"q": text})
        assert response.status_code == 200, (text, response.text)
    assert len(await search(client)) == 2


async def test_search_refuses_bad_parameters_naming_them(client: httpx.AsyncClient) -> None:
    seller = await register(client)
    await post_listing(client, seller)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"year_min": 1800}, "year_min"),
        ({"year_max": NEXT_YEAR + 1}, "year_max"),
        ({"year_min": "nineteen"}, "year_min"),
        ({"year_min": 2010, "year_max": 2000}, "year_max"),
        ({"price_min": -1}, "price_min"),
        ({"price_max": 10**11 + 1}, "price_max"),
        ({"price_min": 5, "price_max": 4}, "price_max"),
        ({"q": "x" * 10_000}, "q"),
        ({"q": "nul\x00byte"}, "q"),
        ({"make": "m" * 41}, "make"),
        ({"sort": "cheapest"}, "sort"),
        ({"sort": "relevance"}, "sort"),
        ({"status": "deleted"}, "status"),
        ({"seller_id": "me"}, "seller_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"before": "not a cursor"}, "before"),
        ({"before": "eyJ4Ijox"}, "before"),
        ({"colour": "red"}, "colour"),
    ]
    for params, field in cases:
        response = await client.get("/api/listings", params=params)
        assert response.status_code == 422, (params, response.text)
        assert field in response.json()["error"]["fields"], (params, response.text)
    # A cursor of one sort is refused by another.
    page = (await client.get("/api/listings", params={"limit": 1})).json()
    assert page["next_cursor"]
    response = await client.get(
        "/api/listings", params={"sort": "price_asc", "before": page["next_cursor"]}
    )
    assert response.status_code == 422
    assert "before" in response.json()["error"]["fields"]
    twice = await client.get("/api/listings?make=a&make=b")
    assert twice.status_code == 422


async def test_listing_fields_are_checked_naming_each_bad_one(client: httpx.AsyncClient) -> None:
    seller = await register(client)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"year": 1885}, "year"),
        ({"year": NEXT_YEAR + 1}, "year"),
        ({"year": "2015"}, "year"),
        ({"year": 2015.5}, "year"),
        ({"year": True}, "year"),
        ({"price_cents": -1}, "price_cents"),
        ({"price_cents": 10**11 + 1}, "price_cents"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "dollars"}, "currency"),
        ({"mileage_km": -5}, "mileage_km"),
        ({"title": ""}, "title"),
        ({"title": "t" * 121}, "title"),
        ({"title": "nul\x00"}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"make": "m" * 41}, "make"),
        ({"model": None}, "model"),
        ({"description": "d" * 5001}, "description"),
        ({"description": "bad \x00 byte"}, "description"),
        ({"location": "l" * 121}, "location"),
    ]
    for change, field in cases:
        response = await client.post("/api/listings", json=car(**change), headers=seller.headers)
        assert response.status_code == 422, (change, response.text)
        assert field in response.json()["error"]["fields"], (change, response.text)
    surrogate = await client.post(
        "/api/listings",
        content=b'{"title": "\\ud800", "make": "a", "model": "b", "year": 2000, "price_cents": 1}',
        headers={**seller.headers, "content-type": "application/json"},
    )
    assert surrogate.status_code == 400  # orjson refuses lone surrogates: not valid JSON
    missing = await client.post("/api/listings", json={}, headers=seller.headers)
    assert set(missing.json()["error"]["fields"]) == {
        "title",
        "make",
        "model",
        "year",
        "price_cents",
    }
    raw = await client.post(
        "/api/listings",
        content=b'{"title": "x", "year": 2000',
        headers={**seller.headers, "content-type": "application/json"},
    )
    assert raw.status_code == 400
    ok = await client.post(
        "/api/listings",
        json=car(currency="eur", mileage_km=0, location="  Lyon  ", year=NEXT_YEAR),
        headers=seller.headers,
    )
    assert ok.status_code == 201
    assert (ok.json()["currency"], ok.json()["location"]) == ("EUR", "Lyon")
    assert ok.json()["seller"]["id"] == seller.id
    assert ok.json()["status"] == "active"


async def test_the_seller_edits_and_marks_sold_and_deletes(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    seller, other = await register(client), await register(client)
    listing = await post_listing(client, seller)
    url = f"/api/listings/{listing['id']}"
    edited = await client.patch(
        url, json={"price_cents": 1_000_000, "mileage_km": None}, headers=seller.headers
    )
    assert edited.status_code == 200
    assert edited.json()["price_cents"] == 1_000_000
    for body, field in (
        ({}, "_body"),
        ({"status": "hidden"}, "status"),
        ({"status": "gone"}, "status"),
        ({"title": None}, "title"),
        ({"year": 3000}, "year"),
    ):
        response = await client.patch(url, json=body, headers=seller.headers)
        assert response.status_code == 422, body
        assert field in response.json()["error"]["fields"]
    assert (
        await client.patch(url, json={"status": "sold"}, headers=other.headers)
    ).status_code == 403
    sold = await client.patch(url, json={"status": "sold"}, headers=seller.headers)
    assert sold.json()["status"] == "sold"
    assert listing["id"] not in {x["id"] for x in await search(client)}
    assert listing["id"] in {x["id"] for x in await search(client, status="sold")}
    assert (await client.delete(url, headers=other.headers)).status_code == 403
    assert (await client.delete(url, headers=seller.headers)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert listing["id"] not in {x["id"] for x in await search(client, status="sold")}
    assert (await client.delete(url, headers=seller.headers)).status_code == 404


async def test_replies_are_a_thread_oldest_first_with_tombstones(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    seller, buyer = await register(client), await register(client)
    mod = await moderator(client, server)
    listing = await post_listing(client, seller)
    url = f"/api/listings/{listing['id']}/replies"
    ids = []
    for n in range(5):
        response = await client.post(url, json={"body": f"question {n}"}, headers=buyer.headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    first_page = (await client.get(url, params={"limit": 3})).json()
    assert [r["body"] for r in first_page["data"]] == ["question 0", "question 1", "question 2"]
    rest = (await client.get(url, params={"limit": 3, "before": first_page["next_cursor"]})).json()
    assert [r["body"] for r in rest["data"]] == ["question 3", "question 4"]
    assert rest["next_cursor"] is None
    assert (await client.get(f"/api/listings/{listing['id']}")).json()["reply_count"] == 5

    deleted = await client.delete(f"{url}/{ids[1]}", headers=buyer.headers)
    assert deleted.status_code == 204
    assert (await client.delete(f"{url}/{ids[2]}", headers=seller.headers)).status_code == 403
    without_reason = await client.delete(f"{url}/{ids[2]}", headers=mod.headers)
    assert without_reason.status_code == 422
    assert "reason" in without_reason.json()["error"]["fields"]
    by_mod = await client.delete(f"{url}/{ids[2]}", params={"reason": "rude"}, headers=mod.headers)
    assert by_mod.status_code == 204
    hidden = await client.post(
        f"{url}/{ids[3]}/hide", json={"reason": "off topic"}, headers=mod.headers
    )
    assert hidden.json()["hidden"] is True
    thread = (await client.get(url)).json()["data"]
    assert [r["id"] for r in thread] == [ids[0], ids[1], ids[2], ids[4]]
    assert [(r["body"], r["deleted_at"] is not None) for r in thread[1:3]] == [("", True)] * 2
    mine = (await client.get(url, headers=buyer.headers)).json()["data"]
    assert [r["id"] for r in mine] == ids  # the author still sees their hidden reply
    assert (await client.get(f"/api/listings/{listing['id']}")).json()["reply_count"] == 2
    for body in ({"body": ""}, {"body": "x" * 2001}, {"body": "nul\x00"}, {"body": 5}, {}):
        response = await client.post(url, json=body, headers=buyer.headers)
        assert response.status_code == 422, body
        assert "body" in response.json()["error"]["fields"]


async def test_contact_opens_the_one_to_one_conversation_once(client: httpx.AsyncClient) -> None:
    seller, buyer = await register(client), await register(client)
    listing = await post_listing(client, seller)
    url = f"/api/listings/{listing['id']}/contact"
    first = await client.post(url, json={"body": "Is it still for sale?"}, headers=buyer.headers)
    assert first.status_code == 201, first.text
    conversation = first.json()["conversation"]
    assert conversation["kind"] == "direct"
    assert {m["user_id"] for m in conversation["members"]} == {seller.id, buyer.id}
    assert first.json()["message"]["body"] == "Is it still for sale?"
    again = await client.post(url, headers=buyer.headers)
    assert again.status_code == 200
    assert again.json()["conversation"]["id"] == conversation["id"]
    assert again.json()["message"] is None
    # The conversation goes on in the chat the seller already has.
    history = await client.get(
        f"/api/conversations/{conversation['id']}/messages", headers=seller.headers
    )
    assert [m["body"] for m in history.json()["data"]] == ["Is it still for sale?"]
    assert (await client.post(url, headers=seller.headers)).status_code == 403
    bad = await client.post(url, json={"body": "  "}, headers=buyer.headers)
    assert bad.status_code == 422
    assert "body" in bad.json()["error"]["fields"]


async def test_moderation_and_admin_actions_are_in_the_audit_log(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    seller, target = await register(client), await register(client)
    mod = await moderator(client, server)
    admin = await register(client)
    await make_admin(server, admin)
    listing = await post_listing(client, seller)
    url = f"/api/listings/{listing['id']}"
    await client.post(f"{url}/hide", json={"reason": "price is bait"}, headers=mod.headers)
    await client.post(f"{url}/unhide", json={"reason": "fixed"}, headers=mod.headers)
    await client.delete(url, params={"reason": "duplicate"}, headers=mod.headers)
    await client.patch(
        f"/api/admin/users/{target.id}",
        json={"role": "moderator", "reason": "trusted"},
        headers=admin.headers,
    )
    await client.patch(
        f"/api/admin/users/{target.id}", json={"banned": True}, headers=admin.headers
    )
    announced = await client.post(
        "/api/admin/announcements", json={"message": "Maintenance at 22:00"}, headers=admin.headers
    )
    assert announced.status_code == 200
    response = await client.get("/api/admin/audit", headers=mod.headers)
    assert response.status_code == 200
    entries = response.json()["data"]
    summary = [(e["action"], e["target"]["id"], e["reason"], e["actor"]["id"]) for e in entries]
    assert summary == [
        ("announcement", "system:general", None, admin.id),
        ("user.ban", target.id, None, admin.id),
        ("user.role", target.id, "trusted", admin.id),
        ("listing.delete", listing["id"], "duplicate", mod.id),
        ("listing.unhide", listing["id"], "fixed", mod.id),
        ("listing.hide", listing["id"], "price is bait", mod.id),
    ]
    assert entries[0]["details"] == {"message": "Maintenance at 22:00", "recipients": 0}
    assert entries[2]["details"] == {"from": "registered", "to": "moderator"}
    page = (await client.get("/api/admin/audit", params={"limit": 2}, headers=mod.headers)).json()
    rest = await client.get(
        "/api/admin/audit", params={"before": page["next_cursor"]}, headers=mod.headers
    )
    assert [e["id"] for e in page["data"] + rest.json()["data"]] == [e["id"] for e in entries]
    assert (await client.get("/api/admin/audit", headers=seller.headers)).status_code == 403


async def test_moderating_what_does_not_exist_is_404(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    mod = await moderator(client, server)
    missing = uuid.uuid4()
    for method, path, body in (
        ("POST", f"/api/listings/{missing}/hide", {"reason": "x"}),
        ("POST", f"/api/listings/{missing}/unhide", {}),
        ("DELETE", f"/api/listings/{missing}?reason=x", None),
        ("POST", f"/api/listings/{missing}/replies/{missing}/hide", {"reason": "x"}),
        ("DELETE", f"/api/listings/{missing}/replies/{missing}?reason=x", None),
        ("GET", f"/api/listings/{missing}", None),
        ("GET", "/api/listings/not-a-uuid", None),
    ):
        response = await client.request(method, path, json=body, headers=mod.headers)
        assert response.status_code == 404, (method, path, response.text)
    listing = await post_listing(client, mod)
    no_reason = await client.post(
        f"/api/listings/{listing['id']}/hide", json={}, headers=mod.headers
    )
    assert no_reason.status_code == 422
    assert "reason" in no_reason.json()["error"]["fields"]


async def test_a_search_past_its_time_bound_is_cancelled_with_503(
    tmp_path: Path, database_url: str
) -> None:
    """The bound is 1 ms (the least statement_timeout); a text search sorted by price over
    20,000 listings reads every match, which takes several times that on any machine."""
    bound = {"search_timeout_seconds": 0.001}
    async with server_with(tmp_path, database_url, marketplace=bound) as (running, client):
        seller = await register(client)
        rows = [
            (uuid.UUID(seller.id), fields, at, status)
            for fields, at, status in generate_listings(20_000, random.Random(1), datetime.now(UTC))
        ]
        await running.context.stores.listings.insert_many(rows)
        response = await client.get("/api/listings", params={"q": "owner", "sort": "price_asc"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert response.headers["retry-after"] == "1"
        # Nothing was left behind: the pool answers the next search (with a bound it can meet).
        found = await running.context.stores.listings.search(
            ListingQuery(q="owner", limit=1), time_bound=30
        )
        assert len(found) == 1


async def test_a_whole_number_written_with_a_fraction_counts_as_an_integer(
    client: httpx.AsyncClient,
) -> None:
    """JSON Schema's `integer` (the document's) counts 12.0: drill F1 found such a listing refused
    with 422. It is taken, and stored as the integer; 12.5 is still no integer."""
    seller = await register(client)
    listing = await post_listing(client, seller, year=2015.0, price_cents=12.0, mileage_km=900.0)
    assert (listing["year"], listing["price_cents"], listing["mileage_km"]) == (2015, 12, 900)
    assert all(type(listing[k]) is int for k in ("year", "price_cents", "mileage_km"))
    changed = await client.patch(
        f"/api/listings/{listing['id']}", json={"price_cents": 15.0}, headers=seller.headers
    )
    assert changed.status_code == 200 and changed.json()["price_cents"] == 15, changed.text
    fraction = await client.post(
        "/api/listings", json=car(price_cents=12.5), headers=seller.headers
    )
    assert fraction.status_code == 422
    assert fraction.json()["error"]["fields"] == {"price_cents": ["must be an integer"]}
