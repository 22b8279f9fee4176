"""Mailed links that work: `server.public_url` follows PORT, and the `/confirm` and `/reset` pages
finish their flows when opened as mailed.

The pages are plain HTML forms (no script), so the tests act as a browser does with httpx against
a real server: read the link from the dev mailbox, GET it, read the page's form (action and fields),
fill it in and post it form-encoded to the action resolved against the page's URL.
"""

from __future__ import annotations

import re
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import httpx
import trio

from parley.config import Settings, load_settings
from parley.service import RunningServer, serve
from tests.api.account_helpers import bearer, login, mails_to, server_with
from tests.api.conftest import Account, register
from tests.conftest import TEST_JWT_SECRET

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

LINK_RE = re.compile(r"^(https?://\S+)$", re.MULTILINE)


def settings_from_port(tmp_path: Path, database_url: str, port: int) -> Settings:
    """Test settings with the port given as `PORT` in the environment, as `parley serve` reads
    it, and no `server.public_url`: it is derived when the settings load."""
    sections: dict[str, dict[str, Any]] = {
        "server": {"env": "test", "data_dir": str(tmp_path / "data"), "gc_freeze": False},
        "database": {"url": database_url, "pool_min_size": 1, "pool_max_size": 4},
        "auth": {"jwt_secret": TEST_JWT_SECRET, "argon2_memory_kib": 1024, "argon2_time_cost": 1},
    }
    return load_settings(
        environ={"PORT": str(port), "HOST": "127.0.0.1"},
        config_file=tmp_path / "absent.toml",
        overrides=sections,
    )


@asynccontextmanager
async def server_on(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with trio.open_nursery() as nursery:
        running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as client:
            yield client
        nursery.cancel_scope.cancel()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Form:
    action: str = ""
    method: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    inputs: list[dict[str, str]] = field(default_factory=list)


class FormReader(HTMLParser):
    """The first form of a page, as a browser would submit it."""

    def __init__(self) -> None:
        super().__init__()
        self.form: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form is None:
            self.form = Form(values.get("action", ""), values.get("method", "get").lower())
        elif tag == "input" and self.form is not None:
            self.form.inputs.append(values)
            self.form.fields[values["name"]] = values.get("value", "")


def read_form(page: str) -> Form:
    reader = FormReader()
    reader.feed(page)
    assert reader.form is not None, page
    return reader.form


async def mailed_link(client: httpx.AsyncClient, address: str, subject_part: str) -> str:
    for mail in await mails_to(client, address):
        if subject_part in mail["subject"]:
            match = LINK_RE.search(mail["text_body"])
            assert match, mail["text_body"]
            return match.group(1)
    raise AssertionError(f"no mail to {address} about {subject_part!r}")


async def submit(browser: httpx.AsyncClient, page: httpx.Response, **filled: str) -> httpx.Response:
    """Post the page's form, with `filled` typed into its fields, as a browser does."""
    form = read_form(page.text)
    assert form.method == "post"
    target = urljoin(str(page.url), form.action)
    return await browser.post(target, data={**form.fields, **filled})


async def me(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    response = await client.get("/api/me", headers=account.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_the_confirm_link_of_a_fresh_registration_confirms_the_account_on_its_port(
    tmp_path: Path, database_url: str
) -> None:
    # Any PORT but the default 4000 shows the defect (links pointed at 4000 whatever PORT was);
    # a free one, so that two test runs side by side never fight over a fixed port.
    port = free_port()
    settings = settings_from_port(tmp_path, database_url, port)
    assert settings.server.public_url == f"http://127.0.0.1:{port}"
    async with server_on(settings) as client, httpx.AsyncClient(timeout=30) as browser:
        account = await register(client)
        link = await mailed_link(client, account.email, "Confirm")
        assert link.startswith(f"http://127.0.0.1:{port}/confirm?token=")

        page = await browser.get(link)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "<script" not in page.text
        # Opening the link (as a mail scanner would) changes nothing.
        assert (await me(client, account))["email_confirmed"] is False

        done = await submit(browser, page)
        assert done.status_code == 200, done.text
        assert "Address confirmed" in done.text
        assert (await me(client, account))["email_confirmed"] is True

        again = await browser.get(link)  # single use
        assert again.status_code == 422
        assert "invalid" in again.text
        assert "<form" not in again.text


async def test_the_reset_link_sets_the_new_password_typed_into_its_page(
    tmp_path: Path, database_url: str
) -> None:
    settings = settings_from_port(tmp_path, database_url, free_port())
    async with server_on(settings) as client, httpx.AsyncClient(timeout=30) as browser:
        account = await register(client)
        forgot = await client.post("/api/auth/password/forgot", json={"email": account.email})
        assert forgot.status_code == 202
        link = await mailed_link(client, account.email, "Reset")
        assert link.startswith(f"{settings.server.public_url}/reset?token=")

        page = await browser.get(link)
        assert page.status_code == 200
        names = {i["name"]: i for i in read_form(page.text).inputs}
        assert names["password"]["type"] == "password"
        assert names["password"]["minlength"] == str(settings.auth.password_min_length)

        differ = await submit(
            browser, page, password="a new long password", password_confirmation="something else"
        )
        assert differ.status_code == 422
        assert "differ" in differ.text
        short = await submit(browser, differ, password="short", password_confirmation="short")
        assert short.status_code == 422
        assert "at least" in short.text
        assert (await login(client, account.email, account.password)).status_code == 200

        new = "a new long password"
        done = await submit(browser, short, password=new, password_confirmation=new)
        assert done.status_code == 200, done.text
        assert "Password changed" in done.text
        assert (await login(client, account.email, account.password)).status_code == 401
        assert (await login(client, account.email, new)).status_code == 200
        assert (await client.get("/api/me", headers=account.headers)).status_code == 401

        reused = await submit(browser, page, password=new + "!", password_confirmation=new + "!")
        assert reused.status_code == 422
        assert "invalid" in reused.text


async def test_the_confirm_page_applies_an_e_mail_change(tmp_path: Path, database_url: str) -> None:
    settings = settings_from_port(tmp_path, database_url, free_port())
    async with server_on(settings) as client, httpx.AsyncClient(timeout=30) as browser:
        account = await register(client)
        changed = await client.patch(
            "/api/me/email",
            json={"email": "moved@example.com", "password": account.password},
            headers=account.headers,
        )
        assert changed.status_code == 202, changed.text
        page = await browser.get(await mailed_link(client, "moved@example.com", "new"))
        assert page.status_code == 200
        assert "new e-mail address" in page.text
        done = await submit(browser, page)
        assert done.status_code == 200, done.text
        assert "moved@example.com" in done.text
        assert (await me(client, account))["email"] == "moved@example.com"


async def test_a_link_without_a_valid_token_shows_why_and_no_form(
    tmp_path: Path, database_url: str
) -> None:
    settings = settings_from_port(tmp_path, database_url, free_port())
    async with server_on(settings) as client:
        for path in ("/confirm", "/reset"):
            missing = await client.get(path)
            assert missing.status_code == 400
            assert "incomplete" in missing.text
            bad = await client.get(path, params={"token": "<b>forged</b>"})
            assert bad.status_code == 422
            assert "<form" not in bad.text
            typed = "x" * 12
            posted = await client.post(
                path, data={"token": "forged", "password": typed, "password_confirmation": typed}
            )
            assert posted.status_code == 422
            assert "invalid" in posted.text
            assert (await client.post(path, data={})).status_code == 400


async def test_link_templates_point_mails_at_an_apps_own_pages(
    tmp_path: Path, database_url: str
) -> None:
    mail = {
        "confirm_link_template": "https://app.example.org/#/confirm/{token}",
        "reset_link_template": "{public_url}/app/reset-password?t={token}&from=mail",
    }
    async with server_with(
        tmp_path, database_url, server={"public_url": "https://chat.example.org/"}, mail=mail
    ) as (_, client):
        account = await register(client)
        link = await mailed_link(client, account.email, "Confirm")
        token = link.removeprefix("https://app.example.org/#/confirm/")
        assert token != link
        confirmed = await client.post("/api/auth/confirm", json={"token": token})
        assert confirmed.status_code == 200, confirmed.text
        await client.post("/api/auth/password/forgot", json={"email": account.email})
        reset = await mailed_link(client, account.email, "Reset")
        assert reset.startswith("https://chat.example.org/app/reset-password?t=")
        assert reset.endswith("&from=mail")
        me_now = await client.get("/api/me", headers=bearer(account.access_token))
        assert me_now.json()["email_confirmed"] is True
