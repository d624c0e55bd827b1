"""Any OpenAI-compatible chat completions server (OpenAI, Azure, Ollama, vLLM, llama.cpp,
LM Studio, OpenRouter, Groq…) through the official `openai` SDK, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from parley.llm.base import ProviderError, StreamEvent, TextDelta, TurnRequest, Usage


class OpenAICompatProvider:
    name = "openai"

    def __init__(self, *, base_url: str | None, api_key: str | None, timeout: float = 60.0):
        self.client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=0,  # retries, fallbacks and breakers are ours, above this adapter
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
            # The SDK's own request path (auth, errors, SSE parsing) without its parameter
            # transform: `chat.completions.create` walks the TypedDict annotations of every
            # argument on every call, which was a fifth of the CPU of a streamed turn. Our
            # body is already plain JSON, so there is nothing to transform.
            stream = await self.client.post(
                "/chat/completions",
                body=body,
                cast_to=ChatCompletion,
                options={"security": {"bearer_auth": True}},
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
            usage: Usage | None = None
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield TextDelta(choice.delta.content)
            if usage is not None:
                yield usage
        except openai.APIStatusError as exc:
            retryable = exc.status_code == 429 or exc.status_code >= 500
            raise ProviderError(
                f"provider answered {exc.status_code}", retryable=retryable, status=exc.status_code
            ) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise ProviderError(
                f"provider unreachable: {type(exc).__name__}", retryable=True
            ) from exc
