"""Picks the provider adapter for a bot configuration.

Network clients are cached per runtime (one per process and event loop), never globally: an
async HTTP client's connections belong to the loop that opened them.
"""

from __future__ import annotations

import hashlib

from parley.kit.runtime import Runtime
from parley.llm.base import Provider
from parley.llm.credentials import ResolvedCredential
from parley.llm.providers.extractive import ExtractiveProvider
from parley.llm.providers.openai_compat import OpenAICompatProvider

_extractive = ExtractiveProvider()


def provider_for(
    name: str, runtime: Runtime, credential: ResolvedCredential | None = None
) -> Provider:
    """The tenant's own credential when it has one (with its own base URL, if any), else the
    platform default from the environment. A tenant base URL never receives the platform key."""
    if name == "openai":
        settings = runtime.settings
        key: str | None
        if credential is not None:
            key, base = credential.api_key, credential.base_url
        else:
            key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
            base = settings.openai_base_url
        fingerprint = hashlib.sha256(f"{base}|{key}".encode()).hexdigest()[:16]
        cache_key = f"openai:{fingerprint}"
        client = runtime.clients.get(cache_key)
        if not isinstance(client, OpenAICompatProvider):
            client = OpenAICompatProvider(base_url=base, api_key=key)
            runtime.clients[cache_key] = client
        return client
    return _extractive
