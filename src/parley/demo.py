"""`parley demo`: a believable marketplace and chat to try Parley on, in one command.

It starts the service (the embedded PostgreSQL unless `DATABASE_URL` is set), and on a database
without the demo it seeds, through the same stores and chat the API uses: an admin, a moderator,
sellers and buyers (confirmed, with generated passwords printed once), a few hundred listings
across makes, models and years (some sold, one hidden by the moderator, with its audit entry),
replies, and conversations opened from listings with their first messages. Then it serves until
Ctrl-C (`--no-serve`: it stops once seeded). A database that has the demo already is left as it
is. Listings are generated from a fixed seed, so two demos look alike; `--listings N` makes more
(the benchmark loads 100,000 this way, with COPY).
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Final

import trio

from parley.accounts import PasswordHasher
from parley.config import Settings
from parley.service import RunningServer, serve
from parley.store.audit import AuditEntry
from parley.store.listing_records import Listing, NewListing
from parley.store.listing_search import ListingQuery

DEMO_DOMAIN: Final = "demo.example.com"
"""Every demo account's e-mail domain (example.com is reserved: no mail reaches anybody)."""
ACCOUNTS: Final = (
    ("admin", "admin", "Dave (admin)"),
    ("moderator", "moderator", "Mo (moderator)"),
    *((name, "registered", name.title()) for name in ("ana", "bruno", "chen", "dana", "emeka")),
    *((name, "registered", name.title()) for name in ("fatima", "gus", "hana", "ivan")),
)
SELLERS: Final = ("ana", "bruno", "chen", "dana", "emeka")
BUYERS: Final = ("fatima", "gus", "hana", "ivan")

# Makes and models with the years they were built in and a typical price when new (USD).
MODELS: Final = {
    "Toyota": [("Camry", 1983, 28_000), ("Corolla", 1966, 22_000), ("RAV4", 1994, 30_000),
               ("Prius", 1997, 27_000), ("Tacoma", 1995, 33_000), ("Land Cruiser", 1951, 60_000)],
    "Honda": [("Civic", 1972, 24_000), ("Accord", 1976, 28_000), ("CR-V", 1995, 30_000),
              ("Fit", 2001, 18_000), ("S2000", 1999, 35_000)],
    "Ford": [("F-150", 1975, 40_000), ("Mustang", 1964, 32_000), ("Focus", 1998, 20_000),
             ("Fiesta", 1976, 16_000), ("Explorer", 1990, 38_000), ("Model A", 1927, 500)],
    "Volkswagen": [("Golf", 1974, 24_000), ("Beetle", 1938, 15_000), ("Passat", 1973, 28_000),
                   ("Transporter", 1950, 35_000), ("Polo", 1975, 17_000)],
    "BMW": [("3 Series", 1975, 42_000), ("5 Series", 1972, 55_000), ("X5", 1999, 62_000),
            ("Z4", 2002, 50_000), ("2002", 1968, 3_000)],
    "Mazda": [("MX-5", 1989, 29_000), ("Mazda3", 2003, 22_000), ("CX-5", 2012, 29_000),
              ("RX-7", 1978, 30_000)],
    "Subaru": [("Outback", 1994, 30_000), ("Impreza", 1992, 22_000), ("Forester", 1997, 28_000)],
    "Tesla": [("Model 3", 2017, 42_000), ("Model S", 2012, 80_000), ("Model Y", 2020, 48_000)],
    "Volvo": [("240", 1974, 15_000), ("XC90", 2002, 58_000), ("V70", 1996, 35_000)],
    "Chevrolet": [("Corvette", 1953, 65_000), ("Silverado", 1998, 42_000),
                  ("Impala", 1958, 30_000), ("Bolt", 2016, 30_000)],
    "Fiat": [("500", 1957, 18_000), ("Panda", 1980, 14_000)],
    "Porsche": [("911", 1964, 110_000), ("Boxster", 1996, 70_000), ("Cayenne", 2002, 80_000)],
}  # fmt: skip
COLOURS: Final = ("red", "blue", "silver", "black", "white", "green", "grey", "yellow")
BODY_NOTES: Final = (
    "Full service history, always garaged.",
    "One owner, non-smoker, no pets.",
    "New tyres and brakes last spring.",
    "Leather seats, heated in front.",
    "Small dent on the rear bumper, priced accordingly.",
    "Timing belt replaced at 150,000 km.",
    "Convertible roof works perfectly, no leaks.",
    "Low mileage for its age, mostly highway driving.",
    "Needs a new clutch soon; otherwise runs well.",
    "Roof rack and tow bar included.",
    "Winter tyres on separate rims included.",
    "Recently passed inspection.",
    "Manual gearbox, six speeds, a joy to drive.",
    "Automatic, cruise control, parking sensors.",
    "Some rust on the sills, mechanically sound.",
)
PLACES: Final = (
    "Portland, OR", "Austin, TX", "Denver, CO", "Lyon", "Berlin", "Leeds", "Toronto, ON",
    "Melbourne", "Osaka", "Porto", None,
)  # fmt: skip
QUESTIONS: Final = (
    "Is it still available?",
    "Would you take an offer?",
    "Any accidents in its history?",
    "Can I see it this weekend?",
    "How many previous owners?",
    "Does it come with the service book?",
    "Is the price negotiable?",
    "Has the timing belt been done?",
)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    email: str
    role: str
    password: str | None
    """Set only when the account was made by this run (shown once; stored as a hash)."""


def generate_listings(
    count: int, rng: random.Random, now: datetime
) -> Iterator[tuple[NewListing, datetime, str]]:
    """`count` believable listings: (fields, created_at within the last 90 days, status)."""
    makes = list(MODELS)
    for _ in range(count):
        make = rng.choice(makes)
        model, first_year, new_price = rng.choice(MODELS[make])
        year = rng.randint(max(first_year, now.year - 30), now.year)
        age = now.year - year
        value = new_price * (0.85**age) * rng.uniform(0.8, 1.2)
        price_cents = max(50_000, int(value) // 50 * 5000)
        mileage = None if rng.random() < 0.05 else int(age * rng.uniform(8_000, 22_000))
        colour = rng.choice(COLOURS)
        notes = rng.sample(BODY_NOTES, rng.randint(1, 4))
        title = f"{year} {make} {model}, {colour}"
        if mileage is not None and mileage < 40_000:
            title += ", low mileage"
        description = f"{colour.title()} {make} {model} from {year}. " + " ".join(notes)
        created_at = now - timedelta(seconds=rng.randint(60, 90 * 24 * 3600))
        status = "sold" if rng.random() < 0.08 else "active"
        yield (
            NewListing(
                title=title,
                make=make,
                model=model,
                year=year,
                price_cents=price_cents,
                currency="USD",
                mileage_km=mileage,
                description=description,
                location=rng.choice(PLACES),
            ),
            created_at,
            status,
        )


async def seed(running: RunningServer, listings: int, *, batch: int = 5000) -> list[DemoAccount]:
    """Seed the demo into the running service; [] when the database has it already."""
    stores = running.context.stores
    if await stores.users.by_email(f"admin@{DEMO_DOMAIN}") is not None:
        return []
    hasher = PasswordHasher(running.context.settings.auth)
    accounts: list[DemoAccount] = []
    ids: dict[str, uuid.UUID] = {}
    for username, role, display_name in ACCOUNTS:
        password = secrets.token_urlsafe(12)
        email = f"{username}@{DEMO_DOMAIN}"
        user = await stores.users.create(
            email=email,
            username=username,
            password_hash=await hasher.hash(password),
            role=role,
            confirmed=True,
        )
        await stores.users.update_profile(user.id, {"display_name": display_name})
        ids[username] = user.id
        accounts.append(DemoAccount(username, email, role, password))
    rng = random.Random(15)
    now = datetime.now(UTC)
    rows = [
        (ids[SELLERS[i % len(SELLERS)]], fields, created_at, status)
        for i, (fields, created_at, status) in enumerate(generate_listings(listings, rng, now))
    ]
    for start in range(0, len(rows), batch):
        await stores.listings.insert_many(rows[start : start + batch])
    await stores.listings.analyze()
    await _replies_and_chats(running, ids, rng)
    return accounts


async def _replies_and_chats(
    running: RunningServer, ids: dict[str, uuid.UUID], rng: random.Random
) -> None:
    """Replies on the newest listings, a few conversations started from them, one hidden."""
    stores, chat = running.context.stores, running.runtime.chat
    newest = await _newest(running, 60)
    for listing in newest[:40]:
        for _ in range(rng.randint(1, 3)):
            asker = ids[rng.choice(BUYERS)]
            await stores.listings.add_reply(listing.id, asker, rng.choice(QUESTIONS))
        if rng.random() < 0.5:
            await stores.listings.add_reply(
                listing.id, listing.seller.id, "Yes, still for sale. Come and see it any evening."
            )
    for buyer, listing in zip(BUYERS, newest[:4], strict=False):
        conversation, _ = await stores.conversations.open_direct(ids[buyer], listing.seller.id)
        await chat.send(
            conversation.id, ids[buyer], f"Hi! About your {listing.title}: is it available?", None
        )
        await chat.send(
            conversation.id, listing.seller.id, "It is. Would Saturday morning suit you?", None
        )
    suspicious = newest[-1]
    reason = "price looks like bait: please check with the seller"
    await stores.listings.set_hidden(
        suspicious.id,
        hidden=True,
        reason=reason,
        audit=AuditEntry(ids["moderator"], "listing.hide", "listing", str(suspicious.id), reason),
    )


async def _newest(running: RunningServer, count: int) -> list[Listing]:
    bound = running.context.settings.marketplace.search_timeout_seconds
    return await running.context.stores.listings.search(ListingQuery(limit=count), time_bound=bound)


def describe(accounts: list[DemoAccount], base_url: str, *, serving: bool) -> str:
    """What `parley demo` prints: the accounts (passwords once) and where to look."""
    lines = []
    if accounts:
        lines.append("Demo accounts (the passwords are shown this once; they are stored hashed):")
        width = max(len(a.email) for a in accounts)
        for account in accounts:
            lines.append(f"  {account.role:<10} {account.email:<{width}}  {account.password}")
    else:
        lines += [
            f"The demo is in this database already: its accounts are <name>@{DEMO_DOMAIN}",
            "(admin, moderator, ana, bruno, ...); their passwords were shown when it was seeded.",
            "For a fresh demo, use another PARLEY_DATA_DIR (or DATABASE_URL).",
        ]
    lines += [
        "",
        "Serving; Ctrl-C stops." if serving else "Serve it with `make serve`, then:",
        f"Browse: {base_url}/api/listings?make=toyota&sort=price_asc",
        f"        {base_url}/api/listings?q=low+mileage+convertible",
        f"API docs: {base_url}/api/docs    sign in: POST {base_url}/api/auth/login",
    ]
    return "\n".join(lines)


async def run_demo(settings: Settings, *, listings: int, serve_after: bool) -> list[DemoAccount]:
    """Start the service, seed the demo if it is not there, print the accounts, then serve until
    a signal (or stop, without `serve_after`)."""
    if settings.server.env == "prod":
        raise ValueError("the demo refuses to run with PARLEY_ENV=prod")
    stop = None if serve_after else trio.Event()
    async with trio.open_nursery() as nursery:
        running: RunningServer = await nursery.start(
            partial(serve, settings, http_server=serve_after, stop=stop)
        )
        accounts = await seed(running, listings)
        base_url = running.base_url or settings.server.public_url
        print(describe(accounts, base_url, serving=serve_after), flush=True)
        if stop is not None:
            stop.set()
    return accounts
