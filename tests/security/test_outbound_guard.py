"""Every connection to a tenant-chosen destination is checked when it is made.

A listening local server counts every TCP connection it accepts. A Hypothesis-generated corpus of
hostile destinations (IPv4 encodings, `::ffff:`/NAT64/6to4 forms, names a local resolver
override points at private addresses, names that do not resolve) is thrown at every feature that
takes a URL: URL sources, tenant webhooks, webhook-channel callbacks, the Telegram Bot API base,
and the OpenAI, Anthropic and Gemini SDK clients of a tenant's own base URL. The server must see
0 connections, and each feature must refuse in its documented way: an unsafe destination is a
permanent failure (never retried) with one message, whatever made it unsafe.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.channels import processing, telegram
from parley.kit.runtime import Runtime
from parley.kit.ssrf import UNSAFE_TARGET, UnsafeUrl, check_url
from parley.knowledge import ingest
from parley.llm.base import ChatMessage, DestinationRefused, ProviderError, TurnRequest
from parley.llm.credentials import ResolvedCredential
from parley.llm.registry import provider_for
from parley.models import KnowledgeSource
from parley.webhooks import delivery
from tests.conftest import make_settings

# --- a server that counts connections ----------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    redirect_to: ClassVar[str | None] = None

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        if type(self).redirect_to is not None:
            self.send_response(307)
            self.send_header("Location", type(self).redirect_to or "")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"ok": true, "result": {}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.accepted = 0
        super().__init__((host, port), handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        found = super().get_request()
        self.accepted += 1
        return found


@contextmanager
def _serve(host: str, handler: type[BaseHTTPRequestHandler], port: int = 0) -> Iterator[Any]:
    server = _CountingServer(host, handler, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def target() -> Iterator[Any]:
    """The internal service an attacker wants to reach: loopback, v4 and (if it exists) v6."""
    with _serve("127.0.0.1", _Handler) as v4:
        try:
            v6_cm = _serve("::1", _Handler, v4.server_address[1])
            v6 = v6_cm.__enter__()
        except OSError:
            v6_cm, v6 = None, None
        v4.v6 = v6
        yield v4
        if v6_cm is not None:
            v6_cm.__exit__(None, None, None)


def _connections(server: Any) -> int:
    return int(server.accepted) + (int(server.v6.accepted) if server.v6 is not None else 0)


# --- the local resolver override --------------------------------------------------------------

_real_getaddrinfo = socket.getaddrinfo


@dataclass
class _Resolver:
    """Answers for `.test`/`.invalid` names (RFC 6761: never real), like a hostile DNS server
    would; everything else goes to the system resolver."""

    answers: dict[str, list[str]] = field(default_factory=dict)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        name = name.lower().rstrip(".")
        if name.endswith((".test", ".invalid")):
            addresses = self.answers.get(name)
            if not addresses:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            out = []
            for a in addresses:
                family = socket.AF_INET6 if ":" in a else socket.AF_INET
                sockaddr: tuple[Any, ...] = (a, int(port or 0))
                if family == socket.AF_INET6:
                    sockaddr += (0, 0)
                out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
            return out
        return _real_getaddrinfo(host, port, *args, **kwargs)


# --- the generated corpus ---------------------------------------------------------------------

_BLOCKED_V4 = st.one_of(
    st.just(ipaddress.IPv4Address("127.0.0.1")),
    st.ip_addresses(v=4, network="127.0.0.0/8"),
    st.ip_addresses(v=4, network="10.0.0.0/8"),
    st.ip_addresses(v=4, network="172.16.0.0/12"),
    st.ip_addresses(v=4, network="192.168.0.0/16"),
    st.ip_addresses(v=4, network="169.254.0.0/16"),
    st.ip_addresses(v=4, network="100.64.0.0/10"),
    st.ip_addresses(v=4, network="0.0.0.0/8"),
    st.ip_addresses(v=4, network="224.0.0.0/4"),
    st.ip_addresses(v=4, network="240.0.0.0/4"),
)


def _v4_forms(ip: ipaddress.IPv4Address) -> list[str]:
    """The ways inet_aton and friends accept an IPv4 address."""
    n = int(ip)
    o = ip.packed
    return [
        str(ip),
        str(n),
        hex(n),
        "0" + oct(n)[2:],
        ".".join("0" + oct(b)[2:] for b in o),
        ".".join(hex(b) for b in o),
        f"{o[0]}.{(n >> 16) & 0xFF}.{n & 0xFFFF}",
        f"{o[0]}.{n & 0xFFFFFF}",
        f"[::ffff:{ip}]",
        f"[::ffff:{n >> 16:x}:{n & 0xFFFF:x}]",
        f"[0:0:0:0:0:ffff:{ip}]",
        f"[64:ff9b::{ip}]",
        f"[2002:{n >> 16:x}:{n & 0xFFFF:x}::1]",
    ]


_V6_BLOCKED = st.sampled_from(
    ["[::1]", "[::]", "[fe80::1]", "[fc00::1]", "[fd00:ec2::254]", "[ff02::1]", "[::ffff:0:0]"]
)


@st.composite
def hostile_hosts(draw: st.DrawFn) -> tuple[str, dict[str, list[str]]]:
    """A host part and the resolver answers it relies on."""
    kind = draw(st.sampled_from(["v4", "v6", "name", "nx"]))
    if kind == "v4":
        return draw(st.sampled_from(_v4_forms(draw(_BLOCKED_V4)))), {}
    if kind == "v6":
        return draw(_V6_BLOCKED), {}
    label = draw(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))
    if kind == "nx":
        return f"{label}.invalid", {}
    inside = str(draw(_BLOCKED_V4))
    answer = draw(
        st.sampled_from(
            [
                [inside],
                ["127.0.0.1"],
                ["::1"],
                [f"::ffff:{inside}"],
                ["93.184.216.34", inside],  # one public answer does not launder a private one
                ["2606:2800:220:1::", "127.0.0.1"],
            ]
        )
    )
    return f"{label}.rebind.test", {f"{label}.rebind.test": answer}


# --- every URL-taking feature -----------------------------------------------------------------


def _runtime(data_dir: Path, **overrides: Any) -> Runtime:
    settings_ = make_settings(data_dir, parley_outbound_allow_private=False, **overrides)
    return Runtime(settings=settings_, db=None, keyring=None)  # type: ignore[arg-type]


async def _close(runtime: Runtime) -> None:
    for client in runtime.clients.values():
        closer = getattr(client, "aclose", None)
        if closer is not None:
            await closer()


_REQUEST = TurnRequest(
    system="SYSTEM PROMPT SECRET",
    messages=[ChatMessage("user", "hello")],
    model="m",
    temperature=0.0,
    max_tokens=8,
    fallback_text="",
)


async def _provider(runtime: Runtime, name: str, base: str) -> Exception | None:
    provider = provider_for(name, runtime, ResolvedCredential("tenant-key", base))
    try:
        async for _ in provider.stream(_REQUEST):
            pass
    except ProviderError as exc:
        return exc
    return None


async def attempts(runtime: Runtime, base: str) -> dict[str, Exception | None]:
    """Each feature once against `base`; the exception it ended with (None: it connected)."""
    out: dict[str, Exception | None] = {}
    source = KnowledgeSource(id=uuid.uuid4(), type="url", url=f"{base}/page")
    try:
        await ingest._load(runtime, None, source)  # type: ignore[arg-type]
        out["url_source"] = None
    except Exception as exc:
        out["url_source"] = exc
    claim = delivery.Claim(
        f"{base}/hook", ["whsec_" + "a" * 32], b"{}", 1, datetime.now(UTC) + timedelta(minutes=1)
    )
    result = await delivery.send(runtime, uuid.uuid4(), claim)
    out["webhook"] = None if result.kind != "refused" else UnsafeUrl(result.error or "")
    try:
        await processing.send_callback(runtime, f"{base}/cb", "c2VjcmV0", {}, msg_id="msg_1")
        out["callback"] = None
    except Exception as exc:
        out["callback"] = exc
    try:
        await telegram.call(runtime, base, "1:abc", "sendMessage", {})
        out["telegram"] = None
    except Exception as exc:
        out["telegram"] = exc
    for name in ("openai", "anthropic", "gemini"):
        out[name] = await _provider(runtime, name, f"{base}/v1")
    return out


def _refused_for_good(feature: str, exc: Exception | None) -> bool:
    """The feature's documented refusal: permanent, never a retry."""
    if feature == "url_source":
        return isinstance(exc, ingest._Permanent) and exc.code == "unsafe_url"
    if feature == "webhook":
        return isinstance(exc, UnsafeUrl) and str(exc.detail).startswith("unsafe_url: ")
    if feature == "callback":
        return isinstance(exc, processing._Refused) and exc.reason == "callback_url_refused"
    if feature == "telegram":
        return isinstance(exc, telegram.TelegramError) and not exc.retryable
    return isinstance(exc, DestinationRefused) and not exc.retryable


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(host=hostile_hosts(), scheme=st.sampled_from(["http", "https"]))
def test_generated_hostile_destinations_never_connect(
    target: Any, tmp_path_factory: pytest.TempPathFactory, host: tuple[str, dict[str, list[str]]],
    scheme: str,
) -> None:  # fmt: skip
    name, answers = host
    port = target.server_address[1]
    base = f"{scheme}://{name}:{port}"
    before = _connections(target)
    runtime = _runtime(tmp_path_factory.getbasetemp())

    async def run() -> dict[str, Exception | None]:
        try:
            return await attempts(runtime, base)
        finally:
            await _close(runtime)

    with mock.patch.object(socket, "getaddrinfo", _Resolver(answers)):
        outcome = asyncio.run(run())
    assert len(outcome) == 7
    assert _connections(target) == before, base
    wrong = {f: repr(e) for f, e in outcome.items() if not _refused_for_good(f, e)}
    assert not wrong, (base, wrong)


def test_one_message_whether_a_name_does_not_resolve_or_resolves_inside(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    resolver = _Resolver({"inside.rebind.test": ["10.0.0.7"]})

    async def detail(url: str) -> str:
        try:
            await processing.send_callback(runtime, url, "c2VjcmV0", {}, msg_id="m")
        except processing._Refused as exc:
            cause = exc.__cause__
            assert isinstance(cause, UnsafeUrl)
            return str(cause.detail)
        finally:
            await _close(runtime)
            runtime.clients.clear()
        raise AssertionError("not refused")

    with mock.patch.object(socket, "getaddrinfo", resolver):
        missing = asyncio.run(detail("https://nowhere.invalid/cb"))
        inside = asyncio.run(detail("https://inside.rebind.test/cb"))
        literal = asyncio.run(detail("https://10.0.0.7/cb"))
    assert missing == inside == literal == UNSAFE_TARGET


class _Gateway(_Handler):
    """A server in a network the operator allowed, redirecting every call inward."""

    redirect_to: ClassVar[str | None] = None


def test_redirects_to_inside_are_refused_or_not_followed_and_each_connection_resolves_afresh(
    target: Any, tmp_path: Path
) -> None:
    """An allowed gateway (127.0.0.2, `PARLEY_OUTBOUND_ALLOWED_NETWORKS`) answers 307 towards
    the internal target, by address and by a name resolving inside. The SDKs do not follow (a
    307 would resend the system prompt), URL sources re-check the hop, webhooks never follow.
    Then a name that first resolved to the gateway flips to the internal address: the next
    connection is refused, with the fresh answer."""
    port = target.server_address[1]
    resolver = _Resolver({"inward.rebind.test": ["127.0.0.1"], "flip.rebind.test": ["127.0.0.2"]})
    runtime = _runtime(tmp_path, parley_outbound_allowed_networks="127.0.0.2/32")
    before = _connections(target)
    with _serve("127.0.0.2", _Gateway) as gateway:
        gw = f"http://127.0.0.2:{gateway.server_address[1]}"
        for inward in (f"http://127.0.0.1:{port}/", f"http://inward.rebind.test:{port}/"):
            _Gateway.redirect_to = inward

            async def run() -> dict[str, Exception | None]:
                try:
                    return await attempts(runtime, gw)
                finally:
                    await _close(runtime)
                    runtime.clients.clear()

            with mock.patch.object(socket, "getaddrinfo", resolver):
                outcome = asyncio.run(run())
            assert _connections(target) == before
            assert _refused_for_good("url_source", outcome["url_source"])
            for sdk in ("openai", "anthropic", "gemini"):
                exc = outcome[sdk]
                assert isinstance(exc, ProviderError)
                assert exc.status == 307, (sdk, exc)  # answered, not followed
            assert outcome["webhook"] is None  # a 307 is a failed attempt, never followed
        assert gateway.accepted >= 7

        _Gateway.redirect_to = None

        async def flip() -> tuple[Exception | None, Exception | None]:
            base = f"http://flip.rebind.test:{gateway.server_address[1]}/v1"
            try:
                first = await _provider(runtime, "openai", base)
                resolver.answers["flip.rebind.test"] = ["127.0.0.1"]
                provider_client = next(iter(runtime.clients.values()))
                await provider_client.aclose()  # the pooled connection is gone: a new one
                runtime.clients.clear()
                second = await _provider(runtime, "openai", base)
                return first, second
            finally:
                await _close(runtime)

        with mock.patch.object(socket, "getaddrinfo", resolver):
            first, second = asyncio.run(flip())
        assert not isinstance(first, DestinationRefused), first
        assert isinstance(second, DestinationRefused)
    assert _connections(target) == before


async def test_saving_a_url_follows_the_same_rules_as_connecting() -> None:
    """Save-time checks (webhooks, URL sources, provider base URLs) honour the operator's
    allowed networks exactly as the guard does, and say the same."""
    allowed = ["127.0.0.2/32"]
    ok = await check_url("https://127.0.0.2:9/v1", allow_private=False, allowed_networks=allowed)
    assert ok == "https://127.0.0.2:9/v1"
    with pytest.raises(UnsafeUrl) as refused:
        await check_url("https://127.0.0.1:9/v1", allow_private=False, allowed_networks=allowed)
    assert refused.value.detail == UNSAFE_TARGET
