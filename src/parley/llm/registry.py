"""Picks the provider adapter for a bot configuration.

Network clients are cached per runtime (one per process and event loop), never globally: an
async HTTP client's connections belong to the loop that opened them.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import AsyncIterator, Callable

import httpx2

from parley.kit.outbound_guard import guarded_sdk_client
from parley.kit.runtime import Runtime
from parley.llm.base import (
    EMBEDDER_KEY,
    DestinationRefused,
    Provider,
    SentenceEmbedder,
    StreamEvent,
    TurnRequest,
)
from parley.llm.credentials import ResolvedCredential
from parley.llm.providers.extractive import ExtractiveProvider

_sdk_loaded: set[str] = set()


def _local_embedder(runtime: Runtime) -> SentenceEmbedder | None:
    """The local embedding model, once retrieval has built it; a remote one is not used (the
    offline provider sends nothing out)."""
    embedder = runtime.clients.get(EMBEDDER_KEY)
    return embedder if getattr(embedder, "name", None) == "local" else None


def _extractive(runtime: Runtime) -> Provider:
    return runtime.client(
        "llm.extractive", lambda: ExtractiveProvider(lambda: _local_embedder(runtime))
    )


def _platform_default(name: str, runtime: Runtime) -> tuple[str | None, str | None]:
    s = runtime.settings
    secret = {
        "openai": s.openai_api_key,
        "anthropic": s.anthropic_api_key,
        "gemini": s.gemini_api_key,
    }[name]
    base = {
        "openai": s.openai_base_url,
        "anthropic": s.anthropic_base_url,
        "gemini": s.gemini_base_url,
    }[name]
    return (secret.get_secret_value() if secret else None), base


def _adapter(name: str) -> Callable[..., Provider] | None:
    """Provider SDKs are imported on first use: each costs start-up time and memory."""
    if name == "openai":
        # lazy: provider SDK, loaded on first use of that provider
        from parley.llm.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider
    if name == "anthropic":
        # lazy: provider SDK, loaded on first use of that provider
        from parley.llm.providers.anthropic_api import AnthropicProvider

        return AnthropicProvider
    if name == "gemini":
        # lazy: provider SDK, loaded on first use of that provider
        from parley.llm.providers.gemini_api import GeminiProvider

        return GeminiProvider
    return None


class _Refused:
    """A tenant base URL the HTTP client cannot even parse (e.g. an octal IPv4 host that
    resolvers would read as 127.0.0.1): every turn ends as a refused destination."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        raise DestinationRefused()
        yield  # pragma: no cover  (makes this an async generator)


def _parses(base: str | None) -> bool:
    try:
        httpx2.URL(base or "https://example.invalid")
    except httpx2.InvalidURL:
        return False
    return True


def provider_for(
    name: str, runtime: Runtime, credential: ResolvedCredential | None = None
) -> Provider:
    """The tenant's own credential when it has one (with its own base URL, if any), else the
    platform default from the environment. A tenant base URL never receives the platform key,
    and a tenant's client connects only through the SSRF guard (decision 0017)."""
    adapter = _adapter(name)
    if adapter is None:
        return _extractive(runtime)
    key: str | None
    if credential is not None:
        key, base = credential.api_key, credential.base_url
    else:
        key, base = _platform_default(name, runtime)
    guarded = credential is not None  # a tenant's credential: its destination is theirs
    fingerprint = hashlib.sha256(f"{name}|{base}|{key}|{guarded}".encode()).hexdigest()[:16]

    def build() -> Provider:
        if guarded and not _parses(base):
            return _Refused(name)
        # Every connection of a tenant's SDK client goes through the SSRF guard, redirects
        # refused; the platform's own endpoints (operator settings) keep the SDK's client.
        http = guarded_sdk_client(runtime.settings, timeout=60.0) if guarded else None
        client = adapter(base_url=base, api_key=key, http_client=http)
        if name not in _sdk_loaded:
            # The SDK imported for this first client lives as long as the process: out of
            # the collector's sight like everything loaded at start-up (app.py). Once per
            # provider, as freezing also keeps whatever garbage exists at that moment.
            _sdk_loaded.add(name)
            gc.freeze()
        return client

    return runtime.client(f"provider:{fingerprint}", build)
