"""A newcomer's first ten minutes (issue 14), driven as a person does: `parley serve --demo` in
a subprocess, its banner read, `/demo` and a page on another allowed origin used in Chromium;
then the embedded database's life across SIGTERM and a crash."""

from __future__ import annotations

import json
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import HostSite, shot
from tests.e2e.first_run import Serve, alive, json_lines, start_serve

CHATTER = (
    "Running commandline",
    "initdb",
    "pg_ctl",
    "setup plugin",
    "Running upgrade",
    "Successful postgres command",
    "XDG_RUNTIME_DIR",
    "Uvicorn running",
)


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Serve, str]]:
    """`parley serve --demo` on a fresh data directory; its banner."""
    with tempfile.TemporaryDirectory(prefix="parley-first-run-") as d:
        serve = start_serve(Path(d), "--demo")
        try:
            banner = serve.wait_for_banner()
            serve.wait_until_idle()
            yield serve, banner
        finally:
            serve.stop()


def test_the_banner_says_what_started_and_nothing_else_is_printed(
    demo: tuple[Serve, str],
) -> None:
    serve, banner = demo
    base = serve.base_url
    assert banner.startswith(f"Parley 0.1.0 is running on {base}")
    for label, value in (
        ("Demo page", f"{base}/demo"),
        ("API docs", f"{base}/docs"),
        ("Health", f"{base}/readyz"),
        ("Console", f"{base}/console"),
        ("Console login", "admin@parley.example.com"),
        ("Database log", str(serve.data_dir / "logs" / "database.log")),
        ("Retrieval", "keyword-only (BM25; PARLEY_EMBEDDINGS=none)"),
    ):
        assert re.search(rf"^  {re.escape(label)} +{re.escape(value)}", banner, re.M), label
    password = re.search(r"^  Password +(\S+) +\(shown once", banner, re.M)
    assert password is not None
    assert len(banner.splitlines()) <= 20
    # Nothing but the banner on stdout; the logs (JSON: stderr is not a terminal) hold no
    # subprocess chatter and no line per demo document.
    assert "".join(serve.stdout) == banner
    events = json_lines(serve.stderr)
    names = [e["event"] for e in events]
    assert "app.started" in names
    assert not {"knowledge.ingest.done", "knowledge.source.created", "tenant.created"} & set(names)
    assert len(events) <= 10, names
    printed = banner + "".join(serve.stderr)
    for chatter in CHATTER:
        assert chatter not in printed, chatter
    # The database's own output is kept, in the file the banner names.
    kept = (serve.data_dir / "logs" / "database.log").read_text()
    assert "Running commandline" in kept
    assert "setup plugin" in kept
    # The login works: the password printed once is the admin's.
    token = httpx.post(
        f"{base}/v1/auth/login",
        json={"email": "admin@parley.example.com", "password": password.group(1)},
    )
    assert token.status_code == 200, token.text


def _host_page(base: str, key: str) -> str:
    return (
        "<!doctype html><html><head><meta charset=utf-8><link rel=icon href='data:,'>"
        "<title>Another site</title></head><body><h1>Another site</h1>"
        f"<script src='{base}/widget/v1/parley.js' data-widget-key='{key}' async></script>"
        "</body></html>"
    )


def _allow_origin(serve: Serve, banner: str, origin: str) -> str:
    """As the admin: add `origin` to the demo widget's allowlist; the widget key."""
    password = re.search(r"^  Password +(\S+)", banner, re.M)
    assert password is not None
    with httpx.Client(base_url=serve.base_url, timeout=20) as c:
        login = c.post(
            "/v1/auth/login",
            json={"email": "admin@parley.example.com", "password": password.group(1)},
        )
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        tenant = c.get("/v1/me", headers=auth).json()["memberships"][0]["tenant"]["id"]
        channels = c.get(f"/v1/tenants/{tenant}/channels", headers=auth).json()["items"]
        widget = next(ch for ch in channels if ch["type"] == "widget")
        patched = c.patch(
            f"/v1/tenants/{tenant}/channels/{widget['id']}",
            json={"allowed_origins": [*widget["allowed_origins"], origin]},
            headers=auth,
        )
        assert patched.status_code == 200, patched.text
    return str(json.loads((serve.data_dir / "demo.json").read_text())["widget_key"])


@pytest.mark.parametrize("where", ["demo", "other-site"])
async def test_a_question_on_the_demo_page_and_on_another_site_gets_an_answer_without_errors(
    browser: Any, demo: tuple[Serve, str], host_sites: tuple[HostSite, HostSite], where: str
) -> None:
    serve, banner = demo
    if where == "demo":
        url = f"{serve.base_url}/demo"
    else:
        allowed, _ = host_sites
        key = _allow_origin(serve, banner, allowed.origin)
        allowed.pages["/first-run"] = _host_page(serve.base_url, key)
        url = f"{allowed.origin}/first-run"
    context = await browser.new_context()
    page = await context.new_page()
    failures: list[str] = []
    page.on(
        "response",
        lambda r: (
            failures.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None
        ),
    )
    await page.goto(url)
    await page.get_by_role("button", name="Open chat").click()
    await page.get_by_role("dialog").wait_for()
    box = page.get_by_role("textbox", name="Message")
    await box.fill("How do I install Parley?")
    await box.press("Enter")
    log = page.get_by_role("log")
    sources = log.get_by_role("list", name="Sources")
    await sources.first.wait_for(timeout=20_000)
    answer = await log.inner_text()
    # Answered from the page that says how to install, and cited: not from a design record
    # that tells how the first run used to go wrong (those are not the demo's knowledge).
    assert "make run" in answer, answer
    cited = [t.strip() for t in await sources.last.get_by_role("listitem").all_inner_texts()]
    assert "Getting started: install and run Parley" in cited, cited
    assert not any(re.match(r"\d{4} —", title) for title in cited), cited
    alert = page.get_by_role("alert")
    assert (await alert.inner_text()).strip() == "" if await alert.count() else True
    await shot(page, f"first-run-{where}")
    await page.reload()
    await page.get_by_role("button", name="Open chat").click()
    await log.get_by_text("How do I install Parley?").wait_for(timeout=15_000)
    await log.get_by_role("list", name="Sources").first.wait_for(timeout=15_000)
    if await alert.count():
        assert (await alert.inner_text()).strip() == ""
    assert failures == []
    await context.close()


async def test_the_demo_pages_suggested_questions_get_answers_that_fit_the_screen(
    browser: Any, demo: tuple[Serve, str]
) -> None:
    """A newcomer who does not know what to ask clicks a suggestion: it opens the chat, sends
    the question and gets an answer from the docs, cited; the page fits a phone's width."""
    serve, _ = demo
    context = await browser.new_context(viewport={"width": 390, "height": 800})
    page = await context.new_page()
    failures: list[str] = []
    page.on(
        "response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    await page.goto(f"{serve.base_url}/demo")
    width = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert await page.evaluate(width) == 0
    await page.get_by_role("button", name="How do I add my own documents?").click()
    log = page.get_by_role("log")
    await log.get_by_role("list", name="Sources").first.wait_for(timeout=20_000)
    answer = await log.inner_text()
    assert "How do I add my own documents?" in answer
    assert "Knowledge" in answer, answer
    assert "add a source" in answer, answer
    assert failures == []
    await shot(page, "first-run-demo-suggestion-390")
    await context.close()
    # On a laptop screen the open chat panel covers none of the suggestions beside it.
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(f"{serve.base_url}/demo")
    await page.get_by_role("button", name="Open chat").click()
    panel = await page.get_by_role("dialog").bounding_box()
    assert panel is not None
    for button in await page.locator("[data-ask]").all():
        box = await button.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= panel["x"], await button.inner_text()
    await shot(page, "first-run-demo-open-1280")
    await context.close()


def test_sigterm_stops_the_embedded_database_and_a_crash_leaves_one_that_starts(
    tmp_path: Path,
) -> None:
    first = start_serve(tmp_path)
    first.wait_for_banner()
    postmaster = first.postmaster_pid()
    assert postmaster is not None
    assert alive(postmaster)
    # A crash (SIGKILL: nothing runs) leaves the database running...
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert alive(postmaster)
    # ...and the next start attaches to it and serves.
    second = start_serve(tmp_path)
    try:
        second.wait_for_banner()
        assert second.postmaster_pid() == postmaster
        assert httpx.get(f"{second.base_url}/readyz", timeout=10).status_code == 200
    finally:
        # SIGTERM (systemd, Docker, Kubernetes) stops it as Ctrl-C does, database included.
        code = second.stop(signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert second.postmaster_pid() is None  # pg_ctl stop -w returned: the server is down
    deadline = time.monotonic() + 10
    while alive(postmaster) and time.monotonic() < deadline:  # until init reaps it
        time.sleep(0.1)
    assert not alive(postmaster)
    assert "Traceback" not in "".join(second.stderr)
