"""Embeddings port: turns chunk and query text into vectors for the HNSW leg of retrieval.

Two adapters: any OpenAI-compatible `/embeddings` server (`openai.py`) and a local
sentence-transformers model shipped in a wheel (`local.py`, optional extra). `embedder_for()`
builds the configured one once per process and caches it in `runtime.clients`; it answers
`None` when embeddings are off or pgvector is absent, and retrieval is then keyword-only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from parley.kit.errors import ParleyError
from parley.knowledge.embeddings.batching import CoalescingEmbedder
from parley.llm.base import EMBEDDER_KEY

if TYPE_CHECKING:
    from parley.kit.runtime import Runtime
    from parley.settings import Settings

CACHE_KEY = EMBEDDER_KEY  # the extractive provider borrows the embedder (llm.registry)


class EmbeddingsError(ParleyError):
    """The embeddings provider failed or is misconfigured (the operator's side, not the user's)."""

    status = 502
    code = "embeddings_unavailable"
    title = "The embeddings provider is unavailable"


@runtime_checkable
class Embedder(Protocol):
    """Embeds texts in batches; every vector is unit length (so cosine = dot product)."""

    name: str  # adapter: "openai" or "local"
    model: str  # stored with each vector: vectors of another model are never compared
    batch_size: int

    @property
    def dims(self) -> int | None:
        """Vector length; `None` until a remote model has answered once."""
        ...

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


def normalise(vector: list[float]) -> list[float]:
    """Unit length, so the stored vectors compare by cosine whatever the provider returns."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0:
        return vector
    return [x / norm for x in vector]


def embedder_for(runtime: Runtime) -> Embedder | None:
    """The process's embedder, or `None` when the vector leg cannot run (embeddings off, or
    no pgvector to store vectors in)."""
    settings = runtime.settings
    if settings.embeddings == "none" or not runtime.pgvector:
        return None
    return runtime.client(CACHE_KEY, lambda: _build(settings))


def _build(settings: Settings) -> Embedder:
    if settings.embeddings == "openai":
        # lazy: provider SDK (openai), only when configured
        from parley.knowledge.embeddings.openai import OpenAIEmbedder

        key = settings.parley_embeddings_api_key or settings.openai_api_key
        return OpenAIEmbedder(
            model=settings.parley_embedding_model,
            base_url=settings.parley_embeddings_base_url or settings.openai_base_url,
            api_key=key.get_secret_value() if key is not None else None,
        )
    # lazy: the local-embeddings extra's adapter (torch, sentence-transformers)
    from parley.knowledge.embeddings.local import LocalEmbedder

    # The model is loaded on first use (in a worker thread), never at start-up (SPEC P8).
    return CoalescingEmbedder(LocalEmbedder(settings.parley_embedding_model))
