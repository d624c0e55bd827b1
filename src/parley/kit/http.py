"""The one outbound HTTP door: SSRF guard, pinned addresses, redirects re-checked, size and time
limits on every call.

Every feature that calls a URL a tenant or visitor gave us (URL ingestion, tenant webhooks,
channel callbacks, the Telegram Bot API) goes through `fetch()`. Its client's transport is the
guarded one (`kit.outbound_guard`): each connection resolves the host afresh, checks every
address and connects to a checked one (TLS still verifies the original name), so a DNS answer
that changes between check and connect (rebinding) cannot smuggle an internal address in.
Redirects are never followed by httpx: the caller says how many hops it accepts, and each hop
connects through the same guard.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpx

from parley.kit.errors import ParleyError
from parley.kit.outbound_guard import guarded_client
from parley.kit.ssrf import UnsafeUrl

if TYPE_CHECKING:
    from parley.kit.runtime import Runtime

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class OutboundTooLarge(ParleyError):
    status = 422
    code = "outbound_too_large"
    title = "The remote answer is larger than allowed"


class OutboundFailed(ParleyError):
    status = 422
    code = "outbound_failed"
    title = "The remote server could not be reached"


@dataclass(frozen=True)
class OutboundResponse:
    status_code: int
    headers: httpx.Headers
    body: bytes
    url: str  # the final URL, after any accepted redirects
    elapsed_ms: float

    @property
    def is_redirect(self) -> bool:
        return self.status_code in REDIRECT_CODES and "location" in self.headers


def client_for(runtime: Runtime) -> httpx.AsyncClient:
    """The process's shared outbound client (never module-global: one per runtime)."""
    return runtime.client(
        "outbound",
        lambda: guarded_client(
            runtime.settings,
            timeout=DEFAULT_TIMEOUT,
            headers={"User-Agent": "Parley/1 (+https://parley.dev/bot)"},
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        ),
    )


def _check_form(url: str) -> None:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        raise UnsafeUrl("The URL cannot be parsed.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("Only http and https URLs with a host are allowed.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Credentials in the URL are not allowed.")


async def _one_hop(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None,
    content: bytes | None,
    max_bytes: int,
    http_timeout: httpx.Timeout | float | None,
) -> OutboundResponse:
    _check_form(url)
    try:
        request = client.build_request(
            method,
            url.strip(),
            headers=headers,
            content=content,
            timeout=http_timeout if http_timeout is not None else DEFAULT_TIMEOUT,
        )
    except httpx.InvalidURL as exc:  # e.g. a dotted octal host httpx will not guess at
        raise UnsafeUrl("The URL cannot be parsed.") from exc
    started = time.perf_counter()
    try:
        response = await client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise OutboundFailed("The remote server did not answer in time.") from exc
    except httpx.HTTPError as exc:
        raise OutboundFailed(
            f"The remote server could not be reached ({type(exc).__name__})."
        ) from exc
    try:
        declared = response.headers.get("content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > max_bytes
        ):
            raise OutboundTooLarge(f"The answer is {declared} bytes; the limit is {max_bytes}.")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > max_bytes:
                    raise OutboundTooLarge(f"The answer is larger than {max_bytes} bytes.")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise OutboundFailed("The remote server broke off its answer.") from exc
    finally:
        await response.aclose()
    body = b"".join(chunks)
    encoding = response.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate", "br"):
        # aiter_raw skips decoding so the size limit counts wire bytes; decode with a cap too.
        body = _decode_capped(body, encoding, max_bytes)
    return OutboundResponse(
        status_code=response.status_code,
        headers=response.headers,
        body=body,
        url=url,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


def _decode_capped(body: bytes, encoding: str, max_bytes: int) -> bytes:

    if encoding == "br":
        raise OutboundFailed("Brotli-encoded answers are not accepted.")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise OutboundFailed("The answer's compression is corrupt.") from exc
    if len(out) > max_bytes or decoder.unconsumed_tail:
        raise OutboundTooLarge(f"The decoded answer is larger than {max_bytes} bytes.")
    return out


async def fetch(
    runtime: Runtime,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    max_bytes: int = 1_000_000,
    max_redirects: int = 0,
    http_timeout: httpx.Timeout | float | None = None,
) -> OutboundResponse:
    """One outbound call under the SSRF rules. With `max_redirects=0` a 3xx is returned as is
    (webhooks never follow redirects); otherwise each hop is re-checked, and a GET is used after
    301/302/303 as browsers do."""
    client = client_for(runtime)
    current, current_method, current_content = url, method.upper(), content
    for _hop in range(max_redirects + 1):
        response = await _one_hop(
            client,
            current_method,
            current,
            headers=headers,
            content=current_content,
            max_bytes=max_bytes,
            http_timeout=http_timeout,
        )
        if not response.is_redirect or max_redirects == 0:
            return response
        current = urljoin(current, response.headers["location"])
        if response.status_code in (301, 302, 303):
            current_method, current_content = "GET", None
    raise OutboundFailed(f"More than {max_redirects} redirects.")
