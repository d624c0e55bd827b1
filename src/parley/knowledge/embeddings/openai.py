"""Any OpenAI-compatible `/embeddings` server (OpenAI, Azure, Ollama, vLLM, llama.cpp, TEI,
LM Studio…) through the official `openai` SDK. The base URL is the operator's setting, not a
tenant's, so it is not an SSRF surface; the SDK's own timeouts apply."""

from __future__ import annotations

import openai

from parley.knowledge.embeddings import EmbeddingsError, normalise

TIMEOUT_SECONDS = 30.0
BATCH_SIZE = 64  # inputs per request: well under every server's limit (OpenAI: 2048)


class OpenAIEmbedder:
    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        timeout: float = TIMEOUT_SECONDS,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self._dims: int | None = None
        self.client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=2,  # embedding is idempotent: the SDK's backoff on 429/5xx is safe
        )

    @property
    def dims(self) -> int | None:
        return self._dims

    async def aclose(self) -> None:
        await self.client.close()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            out += await self._batch(texts[start : start + self.batch_size])
        return out

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        try:
            response = await self.client.embeddings.create(
                model=self.model, input=texts, encoding_format="float"
            )
        except openai.APIStatusError as exc:
            raise EmbeddingsError(
                f"The embeddings server answered {exc.status_code} for model {self.model!r}."
            ) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise EmbeddingsError(
                f"The embeddings server could not be reached ({type(exc).__name__})."
            ) from exc
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(texts):
            raise EmbeddingsError(
                f"The embeddings server returned {len(data)} vectors for {len(texts)} inputs."
            )
        vectors = [normalise([float(x) for x in d.embedding]) for d in data]
        lengths = {len(v) for v in vectors}
        if len(lengths) != 1 or (self._dims is not None and lengths != {self._dims}):
            raise EmbeddingsError("The embeddings server returned vectors of different lengths.")
        self._dims = lengths.pop()
        return vectors
