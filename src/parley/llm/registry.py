"""Picks the provider adapter for a bot configuration."""

from __future__ import annotations

from parley.llm.base import Provider
from parley.llm.providers.extractive import ExtractiveProvider
from parley.llm.providers.openai_compat import OpenAICompatProvider
from parley.settings import Settings

_extractive = ExtractiveProvider()
_clients: dict[tuple[str | None, str | None], OpenAICompatProvider] = {}


def provider_for(name: str, settings: Settings) -> Provider:
    if name == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        cache_key = (settings.openai_base_url, key)
        client = _clients.get(cache_key)
        if client is None:
            client = OpenAICompatProvider(base_url=settings.openai_base_url, api_key=key)
            _clients[cache_key] = client
        return client
    return _extractive
