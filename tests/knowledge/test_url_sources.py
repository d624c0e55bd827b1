"""URL sources: fetched through the outbound door (redirects re-checked), cleaned, indexed;
a page that answers an error fails the job with the reason. Runs its own app that may reach
private addresses (a self-hosted set-up), with its own worker, so no other worker takes these
jobs under the default SSRF rules."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from parley.app import make_worker
from tests.conftest import DatabaseUnderTest, make_settings, register
from tests.knowledge.test_knowledge_api import search, wait_job


class _Site(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, tuple[int, str, bytes]]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status, ctype, body = self.pages.get(self.path, (404, "text/plain", b"missing"))
        self.send_response(status)
        if status in (301, 302):
            self.send_header("Location", body.decode())
            body = b""
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _Site.pages = {
        "/guide": (
            200,
            "text/html; charset=utf-8",
            b"<html><head><title>Setup guide</title><script>var secret=1;</script></head>"
            b"<body><nav>Home | About</nav><main><h1>Installing the router</h1>"
            b"<p>Plug the router into the wall socket and wait for the green light.</p>"
            b"</main></body></html>",
        ),
        "/moved": (302, "text/plain", b"/guide"),
        "/gone": (404, "text/plain", b"nope"),
    }
    yield base
    server.shutdown()


@pytest.fixture(scope="module")
async def private_app(
    data_dir: Path, fake_openai: Any, test_db: DatabaseUnderTest
) -> AsyncIterator[Any]:
    """The app as a self-hosted set-up that may fetch from private addresses."""
    from parley.app import create_app

    settings = make_settings(
        data_dir, parley_outbound_allow_private=True, openai_base_url=fake_openai.base_url
    )
    application = create_app(settings, database_url=test_db.app_url)
    async with application.router.lifespan_context(application):
        w = make_worker(application.state.runtime)
        w.dequeue_timeout = timedelta(seconds=0.2)
        task = asyncio.create_task(w.run())
        yield application
        w.stop()
        await asyncio.wait_for(task, timeout=15)


async def test_a_url_source_is_fetched_through_redirects_and_cleaned(
    private_app: Any, site: str
) -> None:
    transport = httpx.ASGITransport(app=private_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        owner = await register(client, "kb-url")
        resp = await client.post(
            f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
            json={"type": "url", "url": f"{site}/moved"},
            headers=owner.headers,
        )
        assert resp.status_code == 202, resp.text
        assert (await wait_job(client, owner, resp.json()["job"]["id"]))["status"] == "succeeded"
        top = (await search(client, owner, "router green light"))["items"][0]
        assert "wall socket" in top["text"]
        assert "secret" not in top["text"]
        assert top["url"] == f"{site}/moved"

        gone = await client.post(
            f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
            json={"type": "url", "url": f"{site}/gone"},
            headers=owner.headers,
        )
        job = await wait_job(client, owner, gone.json()["job"]["id"])
        assert job["status"] == "failed"
        assert "404" in job["error"]
