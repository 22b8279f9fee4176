"""The marketplace's permission matrix: every route x {anonymous, registered, owner, moderator,
admin, banned} against the expected status, and docs/marketplace.md shows the same table.

"owner" is the seller of the listing (the author of the reply, for reply routes); "registered" a
signed-in user who owns neither; "banned" a user banned after signing in, whose token is refused
from then on. Every cell runs on a listing (and reply) of its own, so no cell sees another's
effects.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from parley.config import PROJECT_ROOT
from tests.api.account_helpers import make_admin
from tests.api.conftest import Account, register
from tests.api.test_listings import car

if TYPE_CHECKING:
    import httpx

    from parley.service import RunningServer

ROLES = ("anonymous", "registered", "owner", "moderator", "admin", "banned")

# route -> expected status per role, in the order of ROLES.
EXPECTED: dict[str, tuple[int, ...]] = {
    "GET /api/listings": (200, 200, 200, 200, 200, 401),
    "GET /api/listings?status=hidden&seller_id={owner}": (401, 403, 200, 200, 200, 401),
    "POST /api/listings": (401, 201, 201, 201, 201, 401),
    "GET /api/listings/{id}": (200, 200, 200, 200, 200, 401),
    "GET /api/listings/{id} (hidden)": (404, 404, 200, 200, 200, 401),
    "PATCH /api/listings/{id}": (401, 403, 200, 403, 403, 401),
    "DELETE /api/listings/{id}": (401, 403, 204, 204, 204, 401),
    "POST /api/listings/{id}/hide": (401, 403, 403, 200, 200, 401),
    "POST /api/listings/{id}/unhide": (401, 403, 403, 200, 200, 401),
    "GET /api/listings/{id}/replies": (200, 200, 200, 200, 200, 401),
    "POST /api/listings/{id}/replies": (401, 201, 201, 201, 201, 401),
    "DELETE /api/listings/{id}/replies/{reply_id}": (401, 403, 204, 204, 204, 401),
    "POST /api/listings/{id}/replies/{reply_id}/hide": (401, 403, 403, 200, 200, 401),
    "POST /api/listings/{id}/replies/{reply_id}/unhide": (401, 403, 403, 200, 200, 401),
    "POST /api/listings/{id}/contact": (401, 201, 403, 201, 201, 401),
    "GET /api/admin/audit": (401, 403, 403, 200, 200, 401),
}

BODIES: dict[str, dict[str, Any]] = {
    "POST /api/listings": car(),
    "PATCH /api/listings/{id}": {"price_cents": 999},
    "POST /api/listings/{id}/hide": {"reason": "matrix"},
    "POST /api/listings/{id}/replies": {"body": "still available?"},
    "POST /api/listings/{id}/replies/{reply_id}/hide": {"reason": "matrix"},
    "POST /api/listings/{id}/contact": {"body": "hello"},
}


def documented_matrix() -> dict[str, tuple[int, ...]]:
    """The table between the role-matrix markers of docs/marketplace.md."""
    text = (PROJECT_ROOT / "docs" / "marketplace.md").read_text()
    table = text.split("<!-- role-matrix -->")[1].split("<!-- /role-matrix -->")[0]
    rows: dict[str, tuple[int, ...]] = {}
    for line in table.strip().splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        route = cells[0].strip("`").replace("`", "")
        rows[route] = tuple(int(re.sub(r"\D", "", cell)) for cell in cells[1:])
    return rows


def test_docs_marketplace_md_shows_the_tested_matrix() -> None:
    header = (PROJECT_ROOT / "docs" / "marketplace.md").read_text()
    assert "| route | " + " | ".join(ROLES) + " |" in header
    assert documented_matrix() == EXPECTED


async def test_every_route_answers_every_role_as_the_matrix_says(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    owner, registered, mod, admin, banned = [await register(client) for _ in range(5)]
    await make_admin(server, mod, role="moderator")
    await make_admin(server, admin)
    banned_headers = dict(banned.headers)
    response = await client.patch(
        f"/api/admin/users/{banned.id}", json={"banned": True}, headers=admin.headers
    )
    assert response.status_code == 200
    callers: dict[str, dict[str, str]] = {
        "anonymous": {},
        "registered": registered.headers,
        "owner": owner.headers,
        "moderator": mod.headers,
        "admin": admin.headers,
        "banned": banned_headers,
    }
    answered: dict[str, tuple[int, ...]] = {}
    for route in EXPECTED:
        statuses = []
        for role in ROLES:
            method, path = await _prepare(client, route, owner, admin)
            body = BODIES.get(route.replace(" (hidden)", ""))
            if method == "POST" and route.endswith("/unhide"):
                body = {}
            if method == "DELETE" and role in ("moderator", "admin"):
                path += "?reason=matrix"
            answer = await client.request(method, path, json=body, headers=callers[role])
            statuses.append(answer.status_code)
        answered[route] = tuple(statuses)
    assert answered == EXPECTED


async def _prepare(
    client: httpx.AsyncClient, route: str, owner: Account, admin: Account
) -> tuple[str, str]:
    """A listing of `owner` (hidden for hidden and unhide routes) and a reply by `owner` (hidden
    for reply unhide), and the route's method and path filled in with them."""
    method, _, template = route.partition(" ")
    template = template.removesuffix(" (hidden)")
    created = await client.post("/api/listings", json=car(), headers=owner.headers)
    listing_id = created.json()["id"]
    reply = await client.post(
        f"/api/listings/{listing_id}/replies", json={"body": "mine"}, headers=owner.headers
    )
    reply_id = reply.json()["id"]
    if route.endswith("(hidden)") or route.endswith("{id}/unhide") or "status=hidden" in route:
        hidden = await client.post(
            f"/api/listings/{listing_id}/hide", json={"reason": "setup"}, headers=admin.headers
        )
        assert hidden.status_code == 200
    if route.endswith("{reply_id}/unhide"):
        hidden = await client.post(
            f"/api/listings/{listing_id}/replies/{reply_id}/hide",
            json={"reason": "setup"},
            headers=admin.headers,
        )
        assert hidden.status_code == 200
    path = template.format(id=listing_id, reply_id=reply_id, owner=owner.id)
    return method, path
