"""The outbound door: hostile URLs never connect, redirects are re-checked, answers are capped."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from parley.kit.http import OutboundTooLarge, fetch
from parley.kit.runtime import Runtime
from parley.kit.ssrf import UnsafeUrl
from tests.conftest import make_settings


class _Handler(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        _Handler.hits.append(self.path)
        if self.path.startswith("/redirect"):
            target = self.path.split("to=", 1)[1]
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
            return
        if self.path == "/big":
            body = b"x" * 5000
        elif self.path == "/bomb":
            body = gzip.compress(b"0" * 200_000)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        else:
            body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _runtime(tmp_path: Path, *, allow_private: bool) -> Runtime:
    settings = make_settings(tmp_path, parley_outbound_allow_private=allow_private)
    return Runtime(settings=settings, db=None, keyring=None)  # type: ignore[arg-type]


def hostile_urls(port: int) -> list[str]:
    """Over 200 ways of naming an address Parley must never reach."""
    hosts = [
        "127.0.0.1", "127.1", "127.0.1", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "2130706433",
        "017700000001", "0", "0.0.0.0", "localhost", "LOCALHOST", "[::1]", "[::]",  # noqa: S104
        "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]",
        "169.254.169.254", "0xa9fea9fe", "2852039166", "[::ffff:169.254.169.254]",
        "[fd00:ec2::254]", "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::]", "10.0.0.1", "10.255.255.254",
        "172.16.0.1", "172.31.255.255", "192.168.0.1", "192.168.1.1", "100.64.0.1", "[fc00::1]",
        "[fe80::1]", "224.0.0.1", "255.255.255.255", "240.0.0.1", "metadata.google.internal",
        "localhost.localdomain", "127.0.0.1.nip.invalid",
    ]  # fmt: skip
    urls: list[str] = []
    for host in hosts:
        for scheme in ("http", "https"):
            urls.append(f"{scheme}://{host}/")
        urls.append(f"http://{host}:{port}/x")
        urls.append(f"http://user:pass@{host}/")
        urls.append(f"http://{host}:6379/")
    urls += [
        "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://127.0.0.1/", "dict://127.0.0.1:11211/",
        "javascript:alert(1)", "data:text/plain,hi", "http://", "http:///x", "//127.0.0.1/",
        "http://127.0.0.1\\@example.com/", "http://example.com@127.0.0.1/",
        "http://[::1]:80@example.com/", "ldap://127.0.0.1/", "http://127.0.0.1:99999/",
    ]  # fmt: skip
    return urls


async def test_over_200_hostile_urls_are_refused_without_a_connection(
    tmp_path: Path, local_server: str
) -> None:
    runtime = _runtime(tmp_path, allow_private=False)
    port = int(local_server.rsplit(":", 1)[1])
    urls = hostile_urls(port)
    assert len(urls) >= 200
    before = len(_Handler.hits)
    refused = 0
    for url in urls:
        with pytest.raises(UnsafeUrl):
            await fetch(runtime, "GET", url)
        refused += 1
    assert refused == len(urls)
    assert len(_Handler.hits) == before, "a hostile URL reached the local server"


async def test_a_redirect_to_a_private_address_is_checked_like_the_first_hop(
    tmp_path: Path, local_server: str
) -> None:
    # The first hop is allowed (tests run with private addresses permitted for the server
    # itself), the redirect target is a scheme no hop may use.
    runtime = _runtime(tmp_path, allow_private=True)
    with pytest.raises(UnsafeUrl):
        await fetch(
            runtime, "GET", f"{local_server}/redirect?to=file:///etc/passwd", max_redirects=3
        )
    # Webhooks never follow: the 302 comes back as it is.
    response = await fetch(runtime, "GET", f"{local_server}/redirect?to=/hello")
    assert response.status_code == 302
    followed = await fetch(runtime, "GET", f"{local_server}/redirect?to=/hello", max_redirects=2)
    assert (followed.status_code, followed.body) == (200, b"hello")


async def test_answers_larger_than_the_limit_are_refused(tmp_path: Path, local_server: str) -> None:
    runtime = _runtime(tmp_path, allow_private=True)
    with pytest.raises(OutboundTooLarge):
        await fetch(runtime, "GET", f"{local_server}/big", max_bytes=1000)
    with pytest.raises(OutboundTooLarge):
        await fetch(runtime, "GET", f"{local_server}/bomb", max_bytes=50_000)
    ok = await fetch(runtime, "GET", f"{local_server}/big", max_bytes=10_000)
    assert len(ok.body) == 5000
