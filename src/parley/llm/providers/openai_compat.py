"""Any OpenAI-compatible chat completions server (OpenAI, Azure, Ollama, vLLM, llama.cpp,
LM Studio, OpenRouter, Groq…) through the official `openai` SDK, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion

from parley.kit.ssrf import UnsafeUrl
from parley.llm.base import (
    ProviderError,
    StreamEvent,
    TextDelta,
    TurnRequest,
    Usage,
    unreachable,
)


class OpenAICompatProvider:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float = 60.0,
        http_client: httpx2.AsyncClient | None = None,
    ):
        self.client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=0,  # retries, fallbacks and breakers are ours, above this adapter
            http_client=http_client,  # the guarded client for a tenant's own base URL
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        messages: list[Any] = [{"role": "system", "content": request.system}]
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        body = {
            "model": request.model,
            "messages": messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        try:
            # The SDK's own request path (auth, errors, SSE decoding, `[DONE]`, error events
            # in the stream) without its two per-call costs: `chat.completions.create` walks the
            # TypedDict annotations of every argument (our body is already plain JSON), and a
            # typed stream builds a `ChatCompletionChunk` model for every token (a quarter of
            # the API process's CPU while replies stream). `AsyncStream[object]` hands each
            # chunk over as the JSON the server sent, read here field by field.
            stream = await self.client.post(
                "/chat/completions",
                body=body,
                cast_to=ChatCompletion,
                options={"security": {"bearer_auth": True}},
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
            usage: Usage | None = None
            async for chunk in stream:
                if not isinstance(chunk, dict):
                    continue
                counted = chunk.get("usage")
                if isinstance(counted, dict):
                    usage = Usage(
                        int(counted.get("prompt_tokens") or 0),
                        int(counted.get("completion_tokens") or 0),
                    )
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    text = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(text, str) and text:
                        yield TextDelta(text)
            if usage is not None:
                yield usage
        except openai.APIStatusError as exc:
            retryable = exc.status_code == 429 or exc.status_code >= 500
            raise ProviderError(
                f"provider answered {exc.status_code}", retryable=retryable, status=exc.status_code
            ) from exc
        except (
            UnsafeUrl,
            openai.APITimeoutError,
            openai.APIConnectionError,
        ) as exc:  # UnsafeUrl: the SDK lets the guard's through
            raise unreachable(exc) from exc
