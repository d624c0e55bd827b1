"""Picks the provider adapter for a bot configuration.

Network clients are cached per runtime (one per process and event loop), never globally: an
async HTTP client's connections belong to the loop that opened them.
"""

from __future__ import annotations

from parley.kit.runtime import Runtime
from parley.llm.base import Provider
from parley.llm.providers.extractive import ExtractiveProvider
from parley.llm.providers.openai_compat import OpenAICompatProvider

_extractive = ExtractiveProvider()


def provider_for(name: str, runtime: Runtime) -> Provider:
    if name == "openai":
        settings = runtime.settings
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        cache_key = f"openai:{settings.openai_base_url}"
        client = runtime.clients.get(cache_key)
        if not isinstance(client, OpenAICompatProvider):
            client = OpenAICompatProvider(base_url=settings.openai_base_url, api_key=key)
            runtime.clients[cache_key] = client
        return client
    return _extractive
