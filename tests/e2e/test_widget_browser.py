"""The widget in real Chromium, embedded by a page on another origin, as a visitor uses it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, create_widget, ingest_now, register
from tests.e2e.conftest import HostSite, shot
from tests.xss_corpus import WIDGET_PAYLOAD

FALLBACK = "Sorry, I have nothing on that yet."


def _page_html(server: LiveServer, key: str) -> str:
    return (
        "<!doctype html><html><head><meta name=viewport content='width=device-width'>"
        "<style>body{font-family:serif} button{all:unset} *{color:red !important}</style></head>"
        "<body><h1>Shop</h1><p>Welcome to the shop.</p>"
        f"<script src='{server.base_url}/widget/v1/parley.js' data-widget-key='{key}' async>"
        "</script></body></html>"
    )


@pytest.fixture(scope="session")
async def widget_key(live_server: LiveServer, host_sites: tuple[HostSite, HostSite]) -> str:
    allowed, _ = host_sites
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as c:
        owner = await register(c, "browser")
        w = await create_widget(
            c,
            owner,
            origins=[allowed.origin],
            bot={"fallback_text": FALLBACK, "greeting": "Hi from the shop!"},
            theme={"color": "#0b5fff", "title": "Shop help"},
        )
    for site in host_sites:
        site.pages["/"] = _page_html(live_server, w.widget_key)
    return w.widget_key


async def _open(page: Any) -> None:
    await page.get_by_role("button", name="Open chat").click()
    await page.get_by_role("dialog").wait_for()


async def _send(page: Any, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")


async def test_chat_streams_reloads_and_escapes(
    browser: Any, widget_key: str, host_sites: tuple[HostSite, HostSite]
) -> None:
    allowed, _ = host_sites
    context = await browser.new_context()
    page = await context.new_page()
    deltas: list[str] = []
    page.on("request", lambda r: deltas.append(r.url) if "/v1/widget/messages" in r.url else None)
    await page.goto(allowed.origin + "/")
    await shot(page, "widget-closed")
    await _open(page)
    log = page.get_by_role("log")
    await page.get_by_text("Hi from the shop!").wait_for()
    await _send(page, "What are your opening hours?")
    await log.get_by_text(FALLBACK).first.wait_for(timeout=15_000)
    await shot(page, "widget-reply")
    assert deltas  # the send went to the widget API

    hostile = '<img src=x onerror="window.__xss=1"> **bold** [x](javascript:alert(1))'
    await _send(page, hostile)
    await log.get_by_text("<img src=x", exact=False).wait_for(timeout=15_000)
    await page.wait_for_timeout(300)
    assert await page.evaluate("window.__xss") is None
    host = page.locator("#parley-widget")
    assert await host.evaluate("h => h.shadowRoot.querySelectorAll('img').length") == 0
    assert (
        await host.evaluate("h => h.shadowRoot.querySelectorAll('a[href^=\"javascript\"]').length")
        == 0
    )
    assert await host.evaluate("h => h.shadowRoot.querySelectorAll('strong').length") >= 1
    await shot(page, "widget-hostile-text")

    await page.reload()
    await _open(page)
    await (
        page.get_by_role("log").get_by_text("What are your opening hours?").wait_for(timeout=15_000)
    )
    await shot(page, "widget-after-reload")
    await context.close()


async def test_a_page_on_another_origin_gets_no_chat(
    browser: Any, widget_key: str, host_sites: tuple[HostSite, HostSite]
) -> None:
    _, other = host_sites
    context = await browser.new_context()
    page = await context.new_page()
    attempts: list[str] = []
    page.on(
        "request",
        lambda r: attempts.append(r.method) if r.url.endswith("/v1/widget/session") else None,
    )
    await page.goto(other.origin + "/")
    await _open(page)
    await (
        page.get_by_role("alert")
        .get_by_text("not available", exact=False)
        .or_(page.get_by_role("alert").get_by_text("unavailable", exact=False))
        .wait_for(timeout=10_000)
    )
    await _send(page, "hello?")
    await page.wait_for_timeout(1500)
    # The browser asked for a session and got nothing it may read (403 without CORS headers).
    assert "POST" in attempts
    assert await page.get_by_role("log").get_by_text(FALLBACK).count() == 0
    await shot(page, "widget-refused-origin")
    await context.close()


async def test_small_screens_have_no_horizontal_scroll(
    browser: Any, widget_key: str, host_sites: tuple[HostSite, HostSite]
) -> None:
    allowed, _ = host_sites
    context = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = await context.new_page()
    await page.goto(allowed.origin + "/")
    await _open(page)
    await _send(page, "averyveryveryveryveryveryveryverylongwordwithoutanyspacesatall " * 3)
    await page.get_by_role("log").get_by_text(FALLBACK).first.wait_for(timeout=15_000)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    box = await page.get_by_role("dialog").bounding_box()
    assert box is not None
    assert box["width"] <= 360
    scroll = await page.locator("#parley-widget").evaluate(
        "h => { const g = h.shadowRoot.querySelector('[role=log]');"
        " return g.scrollWidth - g.clientWidth }"
    )
    assert scroll <= 0
    await shot(page, "widget-360px")
    await page.keyboard.press("Escape")
    await page.get_by_role("dialog").wait_for(state="hidden")
    await context.close()


async def test_javascript_api(
    browser: Any, widget_key: str, host_sites: tuple[HostSite, HostSite]
) -> None:
    allowed, _ = host_sites
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(allowed.origin + "/")
    await page.evaluate("window.Parley.send('sent through the API')")
    log = page.get_by_role("log")
    await log.get_by_text("sent through the API").wait_for(timeout=15_000)
    await log.get_by_text(FALLBACK).first.wait_for(timeout=15_000)
    await page.evaluate("window.Parley.close()")
    await page.get_by_role("dialog").wait_for(state="hidden")
    await context.close()


async def test_hostile_assistant_output_is_inert(
    browser: Any, live_server: LiveServer, host_sites: tuple[HostSite, HostSite]
) -> None:
    """The model's answer is untrusted too: markup and script links in it stay text, only
    http(s) links become links, and no image is ever loaded."""
    allowed, _ = host_sites
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as c:
        owner = await register(c, "hostile-llm")
        w = await create_widget(
            c, owner, origins=[allowed.origin], bot={"provider": "openai", "model": "fake-echo"}
        )
    allowed.pages["/echo"] = _page_html(live_server, w.widget_key)
    context = await browser.new_context()
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    await page.goto(allowed.origin + "/echo")
    await _open(page)
    payload = WIDGET_PAYLOAD
    await _send(page, payload)
    log = page.get_by_role("log")
    await log.get_by_text("You said:", exact=False).wait_for(timeout=15_000)
    await page.wait_for_timeout(500)
    assert await page.evaluate("window.__xss") is None
    host = page.locator("#parley-widget")
    links = await host.evaluate(
        "h => [...h.shadowRoot.querySelectorAll('a')].map(a => [a.href, a.rel, a.target])"
    )
    assert ["https://example.org/docs", "noopener noreferrer", "_blank"] in links
    assert all(href.startswith("https://") for href, _, _ in links)
    assert await host.evaluate("h => h.shadowRoot.querySelectorAll('img, script').length") == 0
    assert not [u for u in requested if "evil.example" in u]
    await shot(page, "widget-hostile-assistant-output")
    await context.close()


async def test_a_reply_shows_once_when_the_events_stream_delivers_it_first(
    browser: Any, widget_key: str, host_sites: tuple[HostSite, HostSite]
) -> None:
    """The stored reply reaches the open events stream as soon as it is saved, often before
    the send's own stream has ended. Here the send's response is held back until the events
    stream has had it for a while: the reply must never be on screen twice."""
    allowed, _ = host_sites
    context = await browser.new_context()
    page = await context.new_page()
    answered = asyncio.Event()

    async def late(route: Any) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch()  # the whole reply stream: the reply is stored by now
        await asyncio.sleep(1.5)  # the events stream delivers it meanwhile
        await route.fulfill(response=response)
        answered.set()

    await page.route("**/v1/widget/messages", late)
    await page.goto(allowed.origin + "/")
    await _open(page)
    host = page.locator("#parley-widget")
    await host.evaluate(
        """(h, text) => {
            const root = h.shadowRoot;
            window.__replies = 0;
            const count = () => [...root.querySelectorAll('.m.bot')]
                .filter((n) => n.textContent.includes(text)).length;
            new MutationObserver(() => { window.__replies = Math.max(window.__replies, count()); })
                .observe(root, { subtree: true, childList: true, characterData: true });
        }""",
        FALLBACK[:10],
    )
    await _send(page, "Is anyone there?")
    log = page.get_by_role("log")
    await asyncio.wait_for(answered.wait(), timeout=15)
    await page.get_by_role("textbox", name="Message").wait_for()
    await page.wait_for_timeout(500)  # the send's stream is read to its end
    assert await log.get_by_text(FALLBACK).count() == 1
    assert await page.evaluate("window.__replies") == 1
    await context.close()


async def test_answers_from_knowledge_show_their_sources_and_keep_them_after_reload(
    app: Any, browser: Any, live_server: LiveServer, host_sites: tuple[HostSite, HostSite]
) -> None:
    allowed, _ = host_sites
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as c:
        owner = await register(c, "kb-browser")
        source = await c.post(
            f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
            json={
                "type": "text",
                "title": "Store opening hours",
                "text": "The store opens at nine in the morning and closes at six in the evening.",
            },
            headers=owner.headers,
        )
        assert source.status_code == 202, source.text
        await ingest_now(app, owner.tenant_id, source.json()["job"]["id"])
        w = await create_widget(c, owner, origins=[allowed.origin])
    allowed.pages["/kb"] = _page_html(live_server, w.widget_key)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(allowed.origin + "/kb")
    await _open(page)
    log = page.get_by_role("log")
    await _send(page, "When does the store open in the morning?")
    await log.get_by_text("opens at nine", exact=False).first.wait_for(timeout=15_000)
    sources = log.get_by_role("list", name="Sources")
    await sources.get_by_text("Store opening hours").wait_for(timeout=15_000)
    # The visitor rates the answer with the thumb under it; the team sees the rating.
    down = log.get_by_role("button", name="Not helpful").last
    assert await down.locator("svg").count() == 1
    await down.click()
    assert await down.get_attribute("aria-pressed") == "true"
    assert (
        await log.get_by_role("button", name="Helpful", exact=True).last.get_attribute(
            "aria-pressed"
        )
        == "false"
    )
    await shot(page, "widget-citation")
    t = f"/v1/tenants/{owner.tenant_id}"
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as c:
        ratings: list[str] = []
        for _ in range(50):
            convs = (await c.get(f"{t}/conversations", headers=owner.headers)).json()["items"]
            detail = await c.get(f"{t}/conversations/{convs[0]['id']}", headers=owner.headers)
            ratings = [f["rating"] for f in detail.json()["feedback"]]
            if ratings:
                break
            await asyncio.sleep(0.1)
        assert ratings == ["down"]
    await page.reload()
    await _open(page)
    await (
        page.get_by_role("log")
        .get_by_role("list", name="Sources")
        .get_by_text("Store opening hours")
        .first.wait_for(timeout=15_000)
    )
    await context.close()


async def test_talk_to_a_person_and_the_operators_reply(
    browser: Any, live_server: LiveServer, host_sites: tuple[HostSite, HostSite]
) -> None:
    """The widget's handoff: the button, the offline message with an email field, then a
    person's typing and reply arriving live."""
    allowed, _ = host_sites
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as c:
        owner = await register(c, "browser-inbox")
        w = await create_widget(c, owner, origins=[allowed.origin])
        allowed.pages["/inbox"] = _page_html(live_server, w.widget_key)
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(allowed.origin + "/inbox")
        await _open(page)
        await page.get_by_role("button", name="Talk to a person").click()
        log = page.get_by_role("log")
        await log.get_by_text("Nobody from our team is available").wait_for(timeout=15_000)
        await page.get_by_role("textbox", name="Your email").wait_for()
        await shot(page, "widget-handoff-offline")

        staff = f"/v1/tenants/{owner.tenant_id}/conversations"
        (conv,) = (await c.get(staff, headers=owner.headers)).json()["items"]
        await c.post(f"{staff}/{conv['id']}/assign", headers=owner.headers)
        await page.get_by_text("You're talking to a person.").wait_for(timeout=15_000)
        await c.post(f"{staff}/{conv['id']}/typing", headers=owner.headers)
        await page.get_by_text("Someone is typing…").wait_for(timeout=15_000)
        await c.post(
            f"{staff}/{conv['id']}/messages",
            json={"content": "Hello, **Sam** here."},
            headers=owner.headers,
        )
        await log.get_by_text("here.", exact=False).wait_for(timeout=15_000)
        await shot(page, "widget-operator-reply")
        await context.close()
