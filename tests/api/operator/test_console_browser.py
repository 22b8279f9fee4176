"""The console in a real headless Chromium: sign in with the operator token, see the tree drawn
as elements, filter the actors by kind, kill a conversation actor from the page and watch its
restart count rise. Screenshots of every page are kept (`CONSOLE_SHOTS_DIR`, else the test's
temporary directory).

Playwright's synchronous API runs in a worker thread (`trio.to_thread`) while the server and a
chatting client run on trio in this one; every wait in the browser is Playwright's own wait for a
condition, bounded by its timeout.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import trio
from playwright.sync_api import Page, expect, sync_playwright

from parley.service import RunningServer
from tests.api.operator.browser import chromium_executable
from tests.conftest import TEST_OPERATOR_TOKEN
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime

pytestmark = pytest.mark.slow

TIMEOUT_MS = 30_000


def _drive(base_url: str, shots: Path, conversation_key: str, executable: str) -> list[str]:
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: (
                    problems.append(f"console: {message.text}") if message.type == "error" else None
                ),
            )
            _sign_in(page, base_url)
            _overview(page, shots)
            _tree(page, shots)
            _actors_and_kill(page, shots, conversation_key)
            page.click("nav a[data-view=tree]")
            restarted = page.locator("#tree li.child.recent", has_text=conversation_key)
            expect(restarted).to_be_visible()  # a restart in the last minute is highlighted
            expect(restarted).to_contain_text("restarted")
            page.screenshot(path=str(shots / "tree-after-kill.png"), full_page=True)
            for view in ("sockets", "topics", "audit"):
                page.click(f"nav a[data-view={view}]")
                expect(page.locator(f"table#{view} tbody tr").first).to_be_visible()
                page.screenshot(path=str(shots / f"{view}.png"), full_page=True)
            expect(page.locator("table#audit")).to_contain_text("actor.kill")
            page.set_viewport_size({"width": 390, "height": 844})  # a phone
            page.click("nav a[data-view=overview]")
            expect(page.locator("#charts .chart").first).to_be_visible()
            page.screenshot(path=str(shots / "overview-phone.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    return problems


def _sign_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/debug")
    form = page.locator("form#token-sign-in")
    expect(form).to_be_visible()
    form.locator("input[name=token]").fill(TEST_OPERATOR_TOKEN)
    form.locator("button[type=submit]").click()
    expect(page.locator("#who")).to_have_text("operator token")
    assert "token" not in page.url


def _overview(page: Page, shots: Path) -> None:
    charts = page.locator("#charts .chart")
    expect(charts).to_have_count(10)
    # Drawn from several samples (the monitor samples every 0.2 s in this test).
    expect(charts.first).to_have_attribute("data-points", re.compile(r"^([5-9]|\d\d+)$"))
    expect(page.locator("#summary .card").first).to_contain_text(page.locator("#node").inner_text())
    page.screenshot(path=str(shots / "overview.png"), full_page=True)


def _tree(page: Page, shots: Path) -> None:
    page.click("nav a[data-view=tree]")
    root = page.locator("#tree > details.supervisor")
    expect(root).to_have_count(1)
    expect(root.locator(":scope > summary .name")).to_have_text("parley")
    expect(root.locator(":scope > summary .strategy")).to_have_text("rest_for_one")
    conversations = page.locator("#tree details.supervisor[data-path='parley/conversations']")
    expect(conversations).to_have_count(1)
    expect(root.locator(":scope > ul > li.child").first).to_contain_text("store")
    assert root.locator(":scope > ul > li.child").count() > 10
    assert page.locator("#tree pre").count() == 0, "the tree is elements, not a JSON dump"
    # Collapsible: folding the root hides its children, unfolding shows them again.
    root.locator(":scope > summary").click()
    expect(root.locator(":scope > ul")).to_be_hidden()
    root.locator(":scope > summary").click()
    expect(root.locator(":scope > ul")).to_be_visible()
    conversations.locator(":scope > summary").click()  # folded by default: open it
    expect(conversations.locator("li.child").first).to_be_visible()
    page.screenshot(path=str(shots / "tree.png"), full_page=True)


def _actors_and_kill(page: Page, shots: Path, conversation_key: str) -> None:
    page.click("nav a[data-view=actors]")
    table = page.locator("table#actors")
    expect(table.locator("tbody tr").first).to_be_visible()
    assert table.locator("td.kind", has_text=re.compile("^registry$")).count() == 1
    page.select_option("select#kind", "conversation")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("td.kind")).to_have_text(["conversation"])
    row = table.locator("tbody tr", has_text=conversation_key)
    expect(row.locator("td.restarts")).to_have_text("0")
    page.screenshot(path=str(shots / "actors.png"), full_page=True)
    row.locator("button.kill").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".title")).to_contain_text("Kill conversation-")
    dialog.locator("input[name=reason]").fill("browser drill")
    dialog.locator("button.confirm").click()
    expect(dialog).to_be_hidden()
    expect(row.locator("td.restarts")).to_have_text("1")
    expect(row.locator("td.last_error")).to_contain_text("browser drill")
    page.screenshot(path=str(shots / "actors-after-kill.png"), full_page=True)


async def test_the_console_in_a_real_browser(
    server: RunningServer, realtime: Realtime, tmp_path: Path
) -> None:
    executable = await trio.to_thread.run_sync(chromium_executable)
    shots = Path(os.environ.get("CONSOLE_SHOTS_DIR") or tmp_path / "console-shots")
    await trio.to_thread.run_sync(lambda: shots.mkdir(parents=True, exist_ok=True))
    alice, bob = await realtime.users(2)
    conversation_id = await realtime.group(alice, bob)
    topic = f"conversation:{conversation_id}"

    async with (
        open_phoenix_client(realtime.url, token=alice.token, heartbeat_interval=5) as chatter,
        open_phoenix_client(realtime.url, token=bob.token, heartbeat_interval=5) as listener,
        trio.open_nursery() as nursery,
    ):
        for client in (chatter, listener):
            assert (await client.join(topic)).status == "ok"
            assert (await client.join("system:general")).status == "ok"

        async def chat() -> None:
            # A little traffic for the charts; the browser's assertions do not depend on it.
            for n in range(10_000):
                await chatter.push_nowait(topic, "new_msg", {"body": f"message {n}"})
                await trio.sleep(0.05)

        nursery.start_soon(chat)
        while server.runtime.registry.lookup(topic) is None:  # noqa: ASYNC110 (the first send)
            await trio.sleep(0.01)
        problems = await trio.to_thread.run_sync(_drive, server.base_url, shots, topic, executable)
        nursery.cancel_scope.cancel()
    assert problems == []
    print(f"console screenshots: {shots}")
