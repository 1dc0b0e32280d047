"""The web demo in headless Chromium: alice and bob, each in a browser context of
their own, on a real `clipwire serve --demo` process.

Chromium is Debian's `chromium` package, driven by Playwright with
``executable_path`` (no browser download). Without it the test skips, except
under CI=true, where scripts/test installs it first (scripts/chromium) and a
missing browser fails. Screenshots of the pages go to tests/demo/artifacts/.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from clipwire.client import Client, connect

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 10_000
VIDEO = "sunset-ride"  # 61 s long in the demo's feed
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CLIPWIRE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        problem = "the playwright package is not installed (pip install -e '.[test]')"
    else:
        problem = "" if path else "no Chromium (apt-get install chromium, or run scripts/chromium)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, but {problem}")
        pytest.skip(f"browser tests skipped: {problem}")
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def demo_url(tmp_path: Path) -> Iterator[str]:
    """A `clipwire serve --demo` process on a free port and a fresh database: its page's URL."""
    log = (tmp_path / "hub.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipwire.server", "serve", "--demo", "--port", "0",
         "--db", str(tmp_path / "hub.db"), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"ws://([\d.]+:\d+)/ws", line)
        assert found, f"the hub did not start: {line!r}, log: {(tmp_path / 'hub.log').read_text()}"
        assert "Demo: open http://" in proc.stdout.readline()
        yield f"http://{found.group(1)}/"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


class Person:
    """One user's page, in a browser context of its own; page errors are kept."""

    def __init__(self, browser: Browser, url: str, user: str, viewport: dict[str, int] = DESKTOP) -> None:
        self.user = user
        self.context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        self.page: Page = self.context.new_page()
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"{user}: {error}"))
        self.page.on("console", self._console)
        self.page.goto(f"{url}?user={user}")
        self.signed_in()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"{self.user}: console: {message.text}")
        elif message.type == "warning":
            self.warnings.append(message.text)

    def signed_in(self) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator("#me-name")).to_have_text(self.user)

    def friend(self, user: str) -> Locator:
        return self.page.locator(f"[data-testid=friend][data-user={user}]")

    def card(self) -> Locator:
        return self.page.locator(f"[data-testid=video-card][data-video={VIDEO}]")

    def bar(self) -> Locator:
        return self.card().locator("[data-testid=watch-bar]")

    def position(self) -> int:
        return int(self.bar().get_attribute("data-pos-ms") or "-1")

    def screenshot(self, name: str = "") -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name or self.user}.png"
        self.page.screenshot(path=str(path))
        return path


def on_hub(url: str, users: tuple[str, ...], script: Callable[..., Awaitable[Any]]) -> Any:
    """Run `script(*clients)` with a Python SDK client signed in (by a demo token) as each of `users`.

    In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    """

    def token(user: str) -> str:
        with urllib.request.urlopen(f"{url}demo/token?user={urllib.parse.quote(user)}", timeout=10) as res:
            return str(json.load(res)["token"])

    async def run() -> Any:
        async with AsyncExitStack() as stack:
            clients: list[Client] = [
                await stack.enter_async_context(connect(url.replace("http", "ws", 1) + "ws", token(user)))
                for user in users
            ]
            return await script(*clients)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()


async def befriend(one: Client, other: Client) -> None:
    await one.friend_request(other.user)
    await other.friend_request(one.user)  # accepts


def clock(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


def eventually(check: Callable[[], Any], what: str, timeout_s: float = WAIT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def test_alice_shares_a_video_bob_reacts_and_replies_at_a_moment_and_they_watch_together(
    browser: Browser, demo_url: str
) -> None:
    from playwright.sync_api import expect

    people: list[Person] = []
    try:
        alice = Person(browser, demo_url, "alice")
        people.append(alice)
        bob = Person(browser, demo_url, "bob")
        people.append(bob)

        # Befriend through the normal protocol: DMs stay friends-only in the demo.
        alice.page.fill("#add-friend-input", "bob")
        alice.page.click("#add-friend-button")
        expect(alice.page.locator("[data-testid=request-out][data-user=bob]")).to_be_visible()
        bob.page.locator("[data-testid=request-in][data-user=alice] [data-testid=accept]").click()
        expect(alice.friend("bob")).to_have_attribute("data-online", "true")
        expect(bob.friend("alice")).to_have_attribute("data-online", "true")

        # alice shares a video from the feed to bob, with a note.
        alice.page.locator(f"[data-testid=feed-item][data-video={VIDEO}] [data-testid=share]").click()
        alice.page.locator("[data-testid=share-target][data-user=bob] input").check()
        alice.page.fill("#share-note", "watch the jump")
        alice.page.click("[data-testid=share-send]")
        expect(alice.card()).to_be_visible()

        # bob sees it arrive unread, opens the chat and sees the card; alice sees it read.
        chat = bob.page.locator("[data-testid=conv][data-peer=alice]")
        expect(chat.locator("[data-testid=unread]")).to_have_text("1")
        chat.click()
        expect(bob.card().locator(".caption")).to_have_text("Sunset ride along the coast")
        expect(bob.page.locator("[data-testid=message][data-sender=alice] .bubble")).to_have_text(
            "watch the jump")
        expect(alice.page.locator("[data-testid=receipt]")).to_have_text("✓✓ Seen")

        # bob seeks to 40%: alice's bar follows (watch-together).
        box = bob.bar().bounding_box()
        assert box is not None
        bob.page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2)
        eventually(lambda: 20_000 < bob.position() < 29_000, "bob's bar is near 40%")
        moment = bob.position()
        eventually(lambda: abs(alice.position() - moment) < 500, "alice's bar is where bob put it")
        expect(alice.bar()).to_have_attribute("data-playing", "false")

        # bob reacts at that moment and replies to it; alice sees both.
        bob.card().locator("[data-testid=react][data-emoji='🔥']").click()
        expect(alice.page.locator("[data-testid=reaction][data-emoji='🔥']")).to_have_text(
            f"🔥 1 · {clock(moment)}")
        bob.card().locator("[data-testid=reply-moment]").click()
        expect(bob.page.locator("[data-testid=reply-chip]")).to_contain_text(f"at {clock(moment)}")
        bob.page.fill("#composer-input", "that jump!")
        bob.page.press("#composer-input", "Enter")
        reply = alice.page.locator("[data-testid=message][data-sender=bob]")
        expect(reply.locator(".bubble")).to_have_text("that jump!")
        expect(reply.locator("[data-testid=reply-quote]")).to_contain_text(
            f"Reply to your “Sunset ride along the coast” at {clock(moment)}")
        expect(bob.page.locator("[data-testid=receipt]")).to_have_text("✓✓ Seen")

        # Typing shows on the other side.
        alice.page.locator("#composer-input").press_sequentially("on my way")
        expect(bob.page.locator("[data-testid=typing]")).to_contain_text("alice is typing")

        # alice presses play: bob's bar runs; she pauses: it stops where hers did.
        alice.card().locator("[data-testid=watch-play]").click()
        expect(bob.bar()).to_have_attribute("data-playing", "true")
        expect(bob.card().locator(".watch-status")).to_have_text("Watching together · alice pressed play")
        start = bob.position()
        time.sleep(1.0)
        assert 500 < bob.position() - start < 2_500
        alice.card().locator("[data-testid=watch-play]").click()
        expect(bob.bar()).to_have_attribute("data-playing", "false")
        eventually(lambda: abs(alice.position() - bob.position()) < 300, "both bars stop at one place")
        assert alice.position() > moment + 500
        expect(bob.card().locator(".watch-status")).to_contain_text("alice paused at")
    finally:
        shots = [person.screenshot() for person in people]
        print("screenshots:", *(str(path) for path in shots))
        for person in people:
            person.context.close()
    assert [problem for person in people for problem in person.problems] == []


def test_the_chat_list_shows_each_conversations_last_message_after_a_reload(
    browser: Browser, demo_url: str
) -> None:
    """More chats than the hub's history burst (10): the page fetches the newest of each, paced."""
    from playwright.sync_api import expect

    alice = Person(browser, demo_url, "alice")
    try:
        async def chat(alice_sdk: Client, bob_sdk: Client) -> list[str]:
            await befriend(alice_sdk, bob_sdk)
            await bob_sdk.send_text("are you coming?", to="alice")
            await alice_sdk.send_text("see you at 8", to="bob")
            groups = []
            for i in range(12):
                conv = await alice_sdk.create_group(["bob"], f"group {i:02}")
                await alice_sdk.send_text("hello group", conv=conv)
                await bob_sdk.send_text(f"last word in {i:02}", conv=conv)
                groups.append(conv)
            return groups

        groups = on_hub(demo_url, ("alice", "bob"), chat)
        alice.page.reload()
        alice.signed_in()
        expect(alice.page.locator("[data-testid=conv]")).to_have_count(13)
        expect(alice.page.locator("[data-testid=conv][data-peer=bob] .sub")).to_have_text("You: see you at 8")
        for i, conv in enumerate(groups):
            expect(alice.page.locator(f"[data-testid=conv][data-conv='{conv}'] .sub")).to_have_text(
                f"bob: last word in {i:02}")
        # The newest chat is on top, and the hub never had to refuse a history request.
        expect(alice.page.locator("[data-testid=conv]").first).to_have_attribute("data-conv", groups[-1])
        assert [w for w in alice.warnings if "rate_limited" in w] == []
    finally:
        print("screenshot:", alice.screenshot("alice-chats-after-reload"))
        alice.context.close()
    assert alice.problems == []


def test_on_a_phone_the_list_opens_a_chat_full_screen_and_back_returns(
    browser: Browser, demo_url: str
) -> None:
    from playwright.sync_api import expect

    async def chat(alice_sdk: Client, bob_sdk: Client) -> None:
        await befriend(alice_sdk, bob_sdk)
        await bob_sdk.send_text("look at this one", to="alice")
        await bob_sdk.share_video({"id": VIDEO, "url": "https://videos.example/v/sunset-ride",
                                   "caption": "Sunset ride along the coast", "duration_ms": 61_000},
                                  to=["alice"], text="the jump at 0:40")

    def fits(page: Page) -> None:
        """Nothing is wider than the phone: no sideways scrolling, the header and its parts inside."""
        width = PHONE["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        header = page.locator("header.topbar")
        assert header.evaluate("el => el.scrollWidth <= el.clientWidth")
        for box in (item.bounding_box() for item in header.locator(":scope > *").all() if item.is_visible()):
            assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= width, box

    on_hub(demo_url, ("alice", "bob"), chat)
    alice = Person(browser, demo_url, "alice", viewport=PHONE)
    page = alice.page
    try:
        chats, chat_pane = page.locator("#chats"), page.locator("section.chat")
        back = page.locator("[data-testid=back]")
        row = page.locator("[data-testid=conv][data-peer=bob]")
        expect(row.locator(".sub")).to_have_text("🎬 Sunset ride along the coast")
        expect(chat_pane).to_be_hidden()
        fits(page)
        alice.screenshot("phone-list")

        row.click()
        expect(chats).to_be_hidden()
        expect(page.locator("[data-testid=message][data-sender=bob] .bubble").first).to_have_text(
            "look at this one")
        expect(back).to_be_visible()
        expect(page.locator("#composer-input")).to_be_in_viewport()
        box = chat_pane.bounding_box()
        assert box is not None
        assert (box["x"], box["width"]) == (0, PHONE["width"]), box
        assert box["y"] <= 60 and box["y"] + box["height"] == PHONE["height"], box  # under the top bar
        fits(page)
        alice.screenshot("phone-chat")

        back.click()
        expect(chats).to_be_visible()
        expect(chat_pane).to_be_hidden()
        expect(row).not_to_have_class(re.compile(r"\bactive\b"))
        fits(page)

        # The same page on a desktop: list and chat side by side, no back button.
        page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
        row.click()
        expect(chats).to_be_visible()
        expect(chat_pane).to_be_visible()
        expect(back).to_be_hidden()
    finally:
        alice.screenshot("phone-then-desktop")
        alice.context.close()
    assert alice.problems == []
