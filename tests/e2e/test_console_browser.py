"""The console in real Chromium: the onboarding journey from sign-up to an answer in the widget
on another origin (console only), then a walk over every page. On every page: no console
errors, no 4xx/5xx responses, screenshots at 1280 and 390 px, 0 serious or critical axe-core
violations; the main actions are done from the keyboard."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from parley.settings import Settings
from tests.conftest import DatabaseUnderTest, LiveServer, serve_app
from tests.e2e.conftest import ARTIFACTS, HostSite, shot
from tests.xss_corpus import WIDGET_PAYLOAD

WIDTHS = (1280, 390)


@pytest.fixture(scope="module")
def console_server(settings: Settings, test_db: DatabaseUnderTest) -> Iterator[LiveServer]:
    """A server with its job worker, so knowledge is indexed as in `parley serve`."""
    with serve_app(
        settings.model_copy(update={"parley_worker_in_process": True}), test_db.app_url
    ) as s:
        yield s


@dataclass
class Watch:
    """Everything the page should never show: console errors, failed responses."""

    errors: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    actions: int = 0

    def attach(self, page: Any) -> None:
        page.on(
            "console",
            lambda m: self.errors.append(f"{m.text} @ {m.location}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on(
            "response",
            lambda r: self.bad.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )


@pytest.fixture(scope="module")
async def console_page(browser: Any) -> AsyncIterator[tuple[Any, Watch]]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    watch = Watch()
    watch.attach(page)
    yield page, watch
    await context.close()


async def tab_to(page: Any, locator: Any, limit: int = 60) -> None:
    """Press Tab until `locator` has the focus: proves it is reachable by keyboard alone."""
    handle = await locator.element_handle()
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("el => document.activeElement === el", handle):
            return
    raise AssertionError("not reachable with Tab")


async def check_page(page: Any, watch: Watch, name: str) -> None:
    """Screenshots at both widths and axe-core's verdict, with nothing failed so far."""
    from axe_playwright_python.async_playwright import Axe

    await page.wait_for_load_state("load")
    results = await Axe().run(page)
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], (name, serious)
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if overflow > 1:
            await shot(page, f"console-overflow-{name}-{width}")
            wide = await page.evaluate(
                "[...document.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right >"
                " document.documentElement.clientWidth + 1).slice(0, 5).map(e => e.tagName + '.' +"
                " e.className + '#' + e.id)"
            )
            raise AssertionError((name, width, overflow, wide))
        # The page starts right under the menu (on a phone the menu sits above it): a short
        # page once left a screen of blank space between them.
        gap = await page.evaluate(
            "(w) => { const n = document.querySelector('nav.side ul'), m = document.querySelector("
            "'main'); return n && m && w < 760 ? m.getBoundingClientRect().top -"
            " n.getBoundingClientRect().bottom : 0; }",
            width,
        )
        assert gap < 48, (name, width, gap)
        await shot(page, f"console-{name}-{width}")
    await page.set_viewport_size({"width": 1280, "height": 900})
    assert watch.errors == [], (name, watch.errors)
    assert watch.bad == [], (name, watch.bad)


async def side_by_side(page: Any, left: str, right: str) -> None:
    """On a desktop the two panes share the top row, `left` first, and the right one gets most
    of the room (the inbox's list once sat in the second column with the conversation pane
    squeezed below it). Read in the page at one moment: htmx may be swapping either pane."""
    placed = (
        "([l, r]) => { const a = document.querySelector(l), b = document.querySelector(r);"
        " if (!a || !b) return null; const x = a.getBoundingClientRect(),"
        " y = b.getBoundingClientRect(); return {a: [x.left, x.top, x.width],"
        " b: [y.left, y.top, y.width], ok: Math.abs(x.top - y.top) < 2 &&"
        " x.right <= y.left && y.width > 2 * x.width}; }"
    )
    try:
        await page.wait_for_function(f"(sel) => ({placed})(sel)?.ok", arg=[left, right])
    except Exception:
        raise AssertionError(await page.evaluate(placed, [left, right])) from None


async def visit(page: Any, watch: Watch, link: str, heading: str, name: str) -> None:
    """Follow a navigation link, wait for the page's heading, check the page."""
    await page.get_by_role("link", name=link).first.click()
    await page.get_by_role("heading", name=heading).wait_for()
    await check_page(page, watch, name)


async def act(watch: Watch, coro: Any) -> Any:
    watch.actions += 1
    return await coro


async def test_journey_from_sign_up_to_an_answer_on_another_origin_then_every_page(
    console_page: tuple[Any, Watch],
    console_server: LiveServer,
    host_sites: tuple[HostSite, HostSite],
    browser: Any,
    admin_conn: Any,
) -> None:
    page, watch = console_page
    site, _ = host_sites
    base_url = console_server.base_url
    started = time.perf_counter()

    # --- the journey: only the console, each user action counted ------------------------
    await act(watch, page.goto(base_url + "/console/signup"))
    await check_page(page, watch, "signup")
    email = f"journey-{time.time_ns()}@example.com"
    await act(watch, page.get_by_label("Email").fill(email))
    await act(watch, page.get_by_label("Password").fill("correct horse battery staple"))
    await act(watch, page.get_by_label("Workspace name").fill("Lyon Bikes"))
    await tab_to(page, page.get_by_role("button", name="Create account"))
    await act(watch, page.keyboard.press("Enter"))
    await page.get_by_role("heading", name="Get started").wait_for()
    await check_page(page, watch, "home-checklist")

    # One form for the first two steps: the bot's name is filled in already ("Lyon Bikes
    # assistant") and the focus waits in its knowledge field: paste, then create.
    assert await page.get_by_label("Bot name").input_value() == "Lyon Bikes assistant"
    knows = page.get_by_label("What should it know? (optional)")
    assert await knows.evaluate("el => document.activeElement === el")
    await act(
        watch,
        knows.fill("Repairs take three working days. We fix every brand of bike at our Lyon shop."),
    )
    await tab_to(page, page.get_by_role("button", name="Create the bot"))
    await act(watch, page.keyboard.press("Enter"))
    await page.get_by_role("link", name="Lyon Bikes assistant").wait_for()
    await page.locator("#step-knowledge.done").wait_for(timeout=30_000)

    await act(
        watch, page.get_by_label("Ask your bot").fill("How many working days do bike repairs take?")
    )
    await act(watch, page.get_by_role("button", name="Ask", exact=True).click())
    await page.get_by_role("heading", name="Sources used").wait_for(timeout=20_000)  # streamed
    assert "three working days" in await page.locator("#try-answer .answer").inner_text()
    await page.reload()
    await page.locator("#step-try.done").wait_for()

    await act(watch, page.get_by_label("Your site's address").fill(site.origin + "/shop"))
    await act(watch, page.get_by_role("button", name="Create the widget").click())
    snippet = page.get_by_label("Paste this before")
    await snippet.wait_for()
    await act(watch, page.get_by_role("button", name="Copy snippet").click())
    code = await snippet.input_value()
    assert site.origin in await page.locator(".snippet .hint").inner_text()
    console_actions = watch.actions

    # The owner pastes the snippet into their own site (another origin).
    site.pages["/journey"] = (
        f"<!doctype html><html lang=en><body><h1>Lyon Bikes</h1>{code}</body></html>"
    )
    visitor = await browser.new_page()
    await visitor.goto(site.origin + "/journey")
    await act(watch, visitor.get_by_role("button", name="Open chat").click())
    box = visitor.get_by_role("textbox", name="Message")
    await act(watch, box.fill("How many working days do bike repairs take?"))
    await act(watch, box.press("Enter"))
    await (
        visitor.get_by_role("log")
        .get_by_text("three working days", exact=False)
        .first.wait_for(timeout=20_000)
    )
    wall = time.perf_counter() - started  # the visitor's tab stays open for the inbox below
    await page.reload()
    await page.get_by_role("heading", name="Lyon Bikes at a glance").wait_for(timeout=10_000)
    await check_page(page, watch, "home-glance")
    (ARTIFACTS / "console-journey.json").write_text(
        json.dumps(
            {"actions": watch.actions, "console_actions": console_actions, "wall_s": round(wall, 1)}
        )
    )

    # --- every page ------------------------------------------------------------------------
    await visit(page, watch, "Bots", "Bots", "bots")
    await page.get_by_role("link", name="Lyon Bikes assistant").click()
    await page.get_by_role("heading", name="Lyon Bikes assistant").wait_for()
    instructions = page.get_by_label("Instructions")
    await instructions.fill("You help the customers of Lyon Bikes.\n" + WIDGET_PAYLOAD)
    await tab_to(page, page.get_by_role("button", name="Save draft"), limit=80)
    await page.keyboard.press("Enter")
    await page.get_by_text("Draft saved.").wait_for()
    assert await page.evaluate("window.__xss") is None
    await check_page(page, watch, "bot-editor")
    await page.get_by_role("link", name="See the diff").click()
    await page.get_by_role("heading", name="compared with").wait_for()
    assert await page.evaluate("window.__xss") is None
    await check_page(page, watch, "bot-diff")
    await page.get_by_role("link", name="Back to Lyon Bikes assistant").click()
    await visit(page, watch, "Publish v2…", "Publish v2?", "bot-publish-confirm")
    await page.get_by_role("button", name="Yes, make v2 live").click()
    await page.get_by_text("Version 2 is now live.").wait_for()
    await visit(page, watch, "Golden questions", "Golden questions", "bot-golden-empty")
    await page.get_by_label("Question", exact=True).fill("When can I bring my bike?")
    await page.get_by_label("The answer says").fill("morning")
    await page.get_by_role("button", name="Add", exact=True).click()
    await page.get_by_role("heading", name="1 question").wait_for()
    await page.get_by_role("button", name="Run", exact=True).click()
    await page.get_by_role("heading", name="v2: ").wait_for()
    await check_page(page, watch, "bot-golden")

    await visit(page, watch, "Knowledge", "Knowledge", "knowledge")
    # A new source's indexing arrives over the stream: the row turns ready without a reload.
    # ("Paste text" is the form open by default.)
    await page.get_by_label("Text", exact=True).fill("Saddles are fitted free of charge.")
    await page.get_by_role("button", name="Add text").click()
    row = page.get_by_role("row", name="Saddles are fitted free of charge.")
    await (
        row.get_by_text("waiting to be indexed", exact=False)
        .or_(row.get_by_text("ready,", exact=False))
        .wait_for()
    )
    await row.get_by_text("ready, 1 passage", exact=False).wait_for(timeout=30_000)
    await visit(page, watch, "Repairs", "Repairs", "knowledge-source")
    # Delete is one click away from the page, but not one click from gone: the button shows
    # only once the summary that says what it does is opened.
    delete = page.get_by_role("button", name=re.compile(r"^Delete Repairs"))
    assert not await delete.is_visible()
    await page.get_by_text("Delete this source…").click()
    await delete.wait_for()
    await page.goto(page.url.split("/knowledge")[0] + "/knowledge/search?q=repairs")
    await page.get_by_role("heading", name="Test search").wait_for()
    # One passage found, and the heading says so in the singular.
    await page.get_by_role("heading", name=re.compile(r"^1 passage \(")).wait_for()
    await check_page(page, watch, "knowledge-search")

    await visit(page, watch, "Channels", "Channels", "channels")
    await page.get_by_role("link", name="Website widget").first.click()
    await page.get_by_role("heading", name="Embed snippet").wait_for()
    # The real widget in the preview frame follows the form as the owner types, unsaved.
    frame = page.frame_locator("#widget-preview")
    await frame.get_by_role("dialog").wait_for()
    await page.get_by_label("Colour").fill("#aa3300")
    await page.get_by_label("Greeting").fill("Bienvenue chez Lyon Bikes")
    await page.get_by_label("Position").select_option("left")
    await frame.get_by_text("Bienvenue chez Lyon Bikes").wait_for()
    host = frame.locator("#parley-widget")
    await page.wait_for_function(
        "() => document.getElementById('widget-preview').src.includes('position=left')"
    )
    await frame.get_by_text("Bienvenue chez Lyon Bikes").wait_for()
    assert (
        await host.evaluate("el => getComputedStyle(el).getPropertyValue('--pc').trim()")
        == "#aa3300"
    )
    launcher = frame.get_by_role("button", name="Open chat")
    outer = await page.locator("#widget-preview").bounding_box()
    for _ in range(100):  # the frame reloads once the form has settled
        box = await launcher.bounding_box()
        if box is not None and box["x"] - outer["x"] < 100:
            break
        await page.wait_for_timeout(100)
    else:
        raise AssertionError(("launcher not on the left", box, outer))
    await check_page(page, watch, "channel-widget")

    await page.get_by_role("link", name="Inbox").click()
    await page.get_by_role("heading", name="Inbox").wait_for()
    await side_by_side(page, "#conv-list", "#conv-pane")
    await page.locator(".conv-list a").first.click()
    await page.get_by_role("heading", name="Conversation").wait_for()
    await side_by_side(page, "#conv-list", "#conv-pane")
    # In the transcript: the list's line shows the same words as the last thing said.
    await (
        page.locator("#transcript").get_by_text("three working days", exact=False).first.wait_for()
    )
    await page.keyboard.press("t")  # the inbox's shortcut for "Take over"
    await page.get_by_role("button", name="Hand back to the bot").wait_for()
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    await page.keyboard.press("r")
    assert await page.evaluate("document.activeElement.id") == "reply-body"
    await page.get_by_label("Reply to the visitor").fill(
        "A person here: bring the bike any morning."
    )
    await page.get_by_role("button", name="Send reply").click()
    await page.locator(".msg.operator").wait_for()
    # The list says what was said last in each conversation, and by whom.
    await page.locator("#conv-list .preview").get_by_text("Agent:").wait_for()
    assert "A person here" in await page.locator("#conv-list .preview").first.inner_text()
    # The visitor answers from the site: the open inbox's list shows it, live (staff stream).
    says = visitor.get_by_role("textbox", name="Message")
    await says.fill("Great, I will come tomorrow.")
    await says.press("Enter")
    await page.locator("#conv-list .preview").get_by_text("Great, I will come").wait_for()
    assert await page.locator("#conv-list .preview .who").first.inner_text() == "Visitor:"
    await visitor.close()
    await check_page(page, watch, "inbox")

    await visit(page, watch, "Analytics", "Analytics", "analytics")
    await visit(page, watch, "Team", "Team", "team")
    await visit(page, watch, "API keys", "API keys", "api-keys")
    await visit(page, watch, "Usage", "Usage and plan", "usage")
    await visit(page, watch, "Webhooks", "Webhooks", "webhooks")
    await visit(page, watch, "Automations", "Automations", "automations")
    await visit(page, watch, "Providers", "AI providers", "providers")
    await page.get_by_role("link", name="Audit log").click()
    await page.get_by_role("link", name="Verify the chain").click()
    await page.get_by_text("The chain is intact").wait_for()
    await check_page(page, watch, "audit")

    await admin_conn.execute("UPDATE users SET is_platform_admin = true WHERE email = $1", email)
    await page.goto(base_url + "/console/admin")
    await page.get_by_role("heading", name="Platform admin").wait_for()
    await check_page(page, watch, "platform-admin")

    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("heading", name="Sign in").wait_for()
    await check_page(page, watch, "login")
    assert Path(ARTIFACTS / "console-bots-390.png").exists()
