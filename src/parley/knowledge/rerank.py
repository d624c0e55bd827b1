"""Reranker port (SPEC C6): an optional second opinion on the fused candidates.

Fusion ranks by the two legs' scores; a reranker reads the question and each candidate
passage together (a cross-encoder) and scores how well the passage answers it. When
`PARLEY_RERANKER=http`, `retrieval.search` asks for `PARLEY_RERANK_CANDIDATES` fused passages,
has them scored, and returns the top `k` by that score. Off by default: it costs a model call
per search.

One adapter: the `/rerank` API that Cohere, Jina, Voyage, vLLM, Infinity and llama.cpp's server
all speak (`{"model", "query", "documents", "top_n"}` → `{"results": [{"index",
"relevance_score"}]}`; Voyage answers under `data`). The base URL is the operator's setting,
not a tenant's, so it is not an SSRF surface. If the server fails, the search keeps the fused
order and says so (`notice`), as it does when embeddings fail. After repeated failures a
circuit breaker (the providers' own, `llm.resilience`) skips it for a while, so a dead
reranker does not add its timeout to every answer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from parley.kit.errors import ParleyError
from parley.llm.resilience import CircuitBreaker

if TYPE_CHECKING:
    from parley.kit.runtime import Runtime

CACHE_KEY = "knowledge.reranker"
TIMEOUT_SECONDS = 10.0
MAX_DOCUMENT_CHARS = 4_000  # a chunk is ~300 tokens; this only bounds a hostile one
BREAKER_FAILURES = 5  # consecutive failures that open the breaker
BREAKER_RESET_SECONDS = 30.0  # then one trial call after this long


class RerankError(ParleyError):
    """The reranking server failed or answered something unusable (the operator's side)."""

    status = 502
    code = "reranker_unavailable"
    title = "The reranker is unavailable"


class Reranker(Protocol):
    name: str
    model: str | None

    async def rerank(self, query: str, documents: list[str]) -> list[float]:
        """One score per document, in the documents' order; higher is more relevant."""
        ...


class HttpReranker:
    name = "http"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str | None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.model = model
        self.breaker = CircuitBreaker(
            failure_threshold=BREAKER_FAILURES, reset_after=BREAKER_RESET_SECONDS
        )
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def rerank(self, query: str, documents: list[str]) -> list[float]:
        if not self.breaker.allow():
            raise RerankError(
                f"The reranking server failed {self.breaker.failures} times in a row and is "
                f"skipped for up to {BREAKER_RESET_SECONDS:.0f} s."
            )
        try:
            scores = await self._call(query, documents)
        except RerankError:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return scores

    async def _call(self, query: str, documents: list[str]) -> list[float]:
        body: dict[str, Any] = {
            "query": query,
            "documents": [d[:MAX_DOCUMENT_CHARS] for d in documents],
            "top_n": len(documents),
        }
        if self.model:
            body["model"] = self.model
        try:
            response = await self.client.post("rerank", json=body)
        except httpx.HTTPError as exc:
            raise RerankError(
                f"The reranking server could not be reached ({type(exc).__name__})."
            ) from exc
        if response.status_code != 200:
            raise RerankError(f"The reranking server answered {response.status_code}.")
        try:
            return scores_from(response.json(), len(documents))
        except ValueError as exc:
            raise RerankError(f"The reranking server's answer is unusable: {exc}") from exc


def scores_from(answer: Any, count: int) -> list[float]:
    """Scores in the documents' order from a `/rerank` answer. A document the server left out
    scores -inf, so it keeps its fused place behind the ones it scored."""
    results = answer.get("results", answer.get("data")) if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise ValueError("no `results` list")
    scores = [-math.inf] * count
    for item in results:
        if not isinstance(item, dict):
            raise ValueError("a result is not an object")
        index, score = item.get("index"), item.get("relevance_score", item.get("score"))
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise ValueError(f"index {index!r} is not one of the {count} documents")
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            raise ValueError(f"document {index} has no finite score")
        scores[index] = float(score)
    return scores


def reranker_for(runtime: Runtime) -> Reranker | None:
    """The process's reranker (built once, cached in `runtime.clients`), or None when off."""
    settings = runtime.settings
    # Settings refuse `http` without a base URL; the second test narrows the type.
    if settings.parley_reranker == "none" or not settings.parley_reranker_base_url:
        return None
    key = settings.parley_reranker_api_key
    base_url = settings.parley_reranker_base_url

    def build() -> Reranker:
        return HttpReranker(
            base_url=base_url,
            api_key=key.get_secret_value() if key is not None else None,
            model=settings.parley_reranker_model,
        )

    return runtime.client(CACHE_KEY, build)
