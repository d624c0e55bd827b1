"""The SSRF guard where connections are made: an httpx transport whose network backend resolves
the host, checks every address, and connects to a checked one.

Checking a URL when it is saved is not enough: the name may resolve elsewhere by the time it is
called (rebinding), an SDK may follow a redirect on its own, and every new connection resolves
again. So the check sits in `connect_tcp`, the one place every connection passes through —
every hop, every redirect, every reconnection, with a fresh DNS answer each time. The pool is
keyed by the original host name and TLS verifies (and sends SNI for) that name, while the socket
goes to the address that was checked. Any client built on `guarded_transport()` is covered:
`kit.http.fetch` (URL sources, tenant webhooks, channel callbacks, the Telegram Bot API) and
`guarded_sdk_client()` (the LLM SDK clients for a tenant's own provider base URL).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import httpcore
import httpcore2
import httpx
import httpx2

from parley.kit.ssrf import UNSAFE_TARGET, Network, UnsafeUrl, resolve_checked

if TYPE_CHECKING:
    from parley.settings import Settings


class GuardedBackend:
    """An httpcore network backend (either flavour: `httpcore` under `httpx`, `httpcore2` under
    `httpx2`, which the OpenAI and Anthropic SDKs use) with the check in front of every TCP
    connection. Duck-typed: both pools only call these three methods."""

    def __init__(
        self,
        inner: Any,
        connect_errors: tuple[type[Exception], ...],
        timeout_error: type[Exception],
        exceptions: Sequence[Network] = (),
    ) -> None:
        self._inner = inner
        self._connect_errors = connect_errors
        self._timeout_error = timeout_error
        self._exceptions = tuple(exceptions)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve_checked(host, port, self._exceptions)
        except TimeoutError as exc:
            raise self._timeout_error("name resolution timed out") from exc
        failure: Exception | None = None
        for address in addresses:  # only checked addresses; the next one if one is down
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except self._connect_errors as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        raise UnsafeUrl(UNSAFE_TARGET)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _guard(transport: Any, core: Any, settings: Settings) -> None:
    """Put the guard into `transport`'s pool (`core`: the httpcore flavour it is built on).
    httpx builds its pool internally; the backend is the pool's connection factory and the one
    seam every connection passes through. `PARLEY_OUTBOUND_ALLOW_PRIVATE` leaves it plain (the
    operator's escape hatch, used by tests with local fakes)."""
    if settings.parley_outbound_allow_private:
        return
    transport._pool._network_backend = GuardedBackend(
        core.AnyIOBackend(),
        (core.ConnectError, core.ConnectTimeout),
        core.ConnectTimeout,
        [ipaddress.ip_network(n) for n in settings.parley_outbound_allowed_networks],
    )


def guarded_transport(
    settings: Settings, *, limits: httpx.Limits | None = None
) -> httpx.AsyncHTTPTransport:
    """An httpx transport for tenant-chosen destinations; `PARLEY_OUTBOUND_ALLOWED_NETWORKS`
    lets named internal networks through while everything else private stays refused."""
    transport = httpx.AsyncHTTPTransport(limits=limits or httpx.Limits())
    _guard(transport, httpcore, settings)
    return transport


def guarded_client(settings: Settings, **kwargs: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` for a tenant-chosen destination: guarded transport, redirects
    never followed, no proxy or netrc taken from the environment."""
    limits = kwargs.pop("limits", None)
    return httpx.AsyncClient(
        transport=guarded_transport(settings, limits=limits),
        follow_redirects=False,
        trust_env=False,
        **kwargs,
    )


def guarded_sdk_client(settings: Settings, *, timeout: float) -> httpx2.AsyncClient:
    """The same guard for the LLM SDKs, on `httpx2` (what the OpenAI, Anthropic and Gemini SDKs
    speak natively). Redirects are never followed: a 307 would resend the request body, system
    prompt included, to wherever the server pointed."""
    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    _guard(transport, httpcore2, settings)
    return httpx2.AsyncClient(
        transport=transport, follow_redirects=False, trust_env=False, timeout=timeout
    )
