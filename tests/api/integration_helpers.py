"""Helpers for the integration tests: an organization with an application, signed requests and
end-user tokens as an integrating backend makes them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from parley.integrations.signing import sign_end_user_token, sign_request
from tests.api.conftest import Account, register

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx

_orgs = iter(range(1_000_000))


@dataclass
class App:
    slug: str
    id: int
    key: str
    secret: str
    admin: Account

    @property
    def base(self) -> str:
        return f"/api/organizations/{self.slug}/applications/{self.key}"

    def event_path(self, event: str) -> str:
        return f"{self.base}/event/{event}"

    def end_user_token(
        self,
        subject: str,
        *,
        ttl: int = 3600,
        channels: Sequence[str] | None = None,
        user_info: dict[str, Any] | None = None,
        secret: str | None = None,
    ) -> str:
        return sign_end_user_token(
            self.key,
            secret or self.secret,
            subject,
            expires_at=int(time.time()) + ttl,
            channels=channels,
            user_info=user_info,
        )

    def signed_url(
        self,
        event: str,
        params: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> str:
        path = self.event_path(event)
        signed = sign_request(
            self.key,
            secret or self.secret,
            "POST",
            path,
            params,
            body,
            int(time.time()) if timestamp is None else timestamp,
        )
        return f"{path}?{urlencode(signed)}"


async def new_app(client: httpx.AsyncClient, admin: Account | None = None, **settings: Any) -> App:
    """An organization made by `admin` (a new user when None) with one application."""
    admin = admin or await register(client)
    slug = f"org-{next(_orgs)}-{admin.username}"
    created = await client.post(
        "/api/organizations", json={"name": f"Org {slug}", "slug": slug}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    app = await client.post(
        f"/api/organizations/{slug}/applications",
        json={"name": "Test App", **settings},
        headers=admin.headers,
    )
    assert app.status_code == 201, app.text
    body = app.json()
    return App(slug, body["id"], body["app_key"], body["app_secret"], admin)


async def enroll(
    client: httpx.AsyncClient, app: App, user: Account, *, admin: bool = False
) -> None:
    response = await client.post(
        f"/api/organizations/{app.slug}/members",
        json={"user_id": user.id, "admin": admin},
        headers=app.admin.headers,
    )
    assert response.status_code == 201, response.text
