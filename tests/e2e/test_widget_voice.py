"""Voice in the widget, in real Chromium with a fake microphone that "says" a WAV made by the
offline text-to-speech: push to talk, the transcript appears, the reply streams, its speech
plays (asserted on the audio element), the voice code loads only on the first press, and the
talk button works from the keyboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.voice.audio import wav_bytes
from tests.conftest import LiveServer, create_widget, register
from tests.e2e.conftest import CHROMIUM_ARGS, HostSite, chromium_path, shot
from tests.voice.helpers import spoken

FALLBACK = "Sorry, I have nothing on that yet. Please ask me something else."
UTTERANCE = "what are your opening hours on saturday"


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the fake microphone hears: the utterance, then a second of silence (it loops)."""
    pcm = spoken(UTTERANCE)
    path = tmp_path_factory.mktemp("mic") / "utterance.wav"
    path.write_bytes(wav_bytes(type(pcm)(pcm.data + b"\x00\x00" * 16_000, pcm.rate)))
    return path


@pytest.fixture(scope="module")
async def voice_browser(microphone: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    exe = chromium_path()
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=exe, args=args)
        yield browser
        await browser.close()


@pytest.fixture(scope="module")
async def voice_page_url(live_server: LiveServer, host_sites: tuple[HostSite, HostSite]) -> str:
    allowed, _ = host_sites
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as c:
        owner = await register(c, "browser-voice")
        w = await create_widget(
            c, owner, origins=[allowed.origin], bot={"fallback_text": FALLBACK}, voice=True
        )
    allowed.pages["/voice"] = (
        "<!doctype html><html><body><h1>Shop</h1>"
        f"<script src='{live_server.base_url}/widget/v1/parley.js' "
        f"data-widget-key='{w.widget_key}' async></script></body></html>"
    )
    return allowed.origin + "/voice"


async def test_push_to_talk_round_trip(voice_browser: Any, voice_page_url: str) -> None:
    context = await voice_browser.new_context()
    page = await context.new_page()
    loaded: list[str] = []
    page.on("request", lambda r: loaded.append(r.url.rsplit("/", 1)[-1]))
    # Count microphone requests: the permission prompt comes with the first one.
    await page.add_init_script(
        "window.__mic = 0; const g = navigator.mediaDevices.getUserMedia"
        ".bind(navigator.mediaDevices); navigator.mediaDevices.getUserMedia ="
        " (c) => { window.__mic++; return g(c); };"
    )
    await page.goto(voice_page_url)
    await page.get_by_role("button", name="Open chat").click()
    talk = page.get_by_role("button", name="Talk (press to start, press again to send)")
    await talk.wait_for()
    assert "voice.js" not in loaded  # the voice module waits for the first press
    assert await page.evaluate("window.__mic") == 0  # no permission asked before a press

    # Keyboard: focus the button and press Enter to start, Space to stop and send.
    await talk.focus()
    await page.keyboard.press("Enter")
    stop = page.get_by_role("button", name="Stop and send")
    await stop.wait_for(timeout=10_000)
    assert "voice.js" in loaded
    assert await page.evaluate("window.__mic") == 1
    assert await stop.get_attribute("aria-pressed") == "true"
    await page.wait_for_timeout(3_000)  # a three-second utterance
    await page.keyboard.press(" ")

    log = page.get_by_role("log")
    spoken_bubble = log.locator(".m.user.spoken")
    await spoken_bubble.wait_for(timeout=20_000)
    transcript = (await spoken_bubble.inner_text()).strip()
    assert transcript  # the caption shows what was heard
    await log.get_by_text(FALLBACK).wait_for(timeout=20_000)

    host = page.locator("#parley-widget")
    await page.wait_for_function(
        "() => { const a = document.querySelector('#parley-widget').shadowRoot"
        ".querySelector('audio.pa'); return a && a.played.length > 0 && a.currentTime > 0; }",
        timeout=20_000,
    )
    state = await host.evaluate(
        "h => { const a = h.shadowRoot.querySelector('audio.pa');"
        " return {src: a.currentSrc, state: a.dataset.state, error: a.error}; }"
    )
    assert state["src"].startswith("blob:")
    assert state["error"] is None
    assert state["state"] in ("playing", "idle")
    await shot(page, "widget-voice")
    status = await host.evaluate("h => h.shadowRoot.querySelector('[role=status]').textContent")
    assert status in ("", f"You said: {transcript}")

    # Barge-in: pressing again while the reply is spoken stops the audio and listens again.
    await talk.click()
    await stop.wait_for(timeout=10_000)
    assert await host.evaluate("h => h.shadowRoot.querySelector('audio.pa').paused") is True
    assert await page.evaluate("window.__mic") == 1  # asked once, on the first press
    await stop.click()
    await context.close()
