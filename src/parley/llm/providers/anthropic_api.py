"""Anthropic's Messages API through the official `anthropic` SDK, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

from parley.kit.ssrf import UnsafeUrl
from parley.llm.base import (
    ProviderError,
    StreamEvent,
    TextDelta,
    TurnRequest,
    Usage,
    unreachable,
)


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float = 60.0,
        http_client: httpx2.AsyncClient | None = None,
    ):
        self.client = anthropic.AsyncAnthropic(
            base_url=base_url,
            api_key=api_key or "not-set",
            timeout=timeout,
            max_retries=0,
            http_client=http_client,  # the guarded client for a tenant's own base URL
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        messages: list[Any] = [{"role": m.role, "content": m.content} for m in request.messages]
        try:
            async with self.client.messages.stream(
                model=request.model,
                system=request.system,
                messages=messages,
                max_tokens=request.max_tokens,
            ) as stream:
                async for text in stream.text_stream:
                    if text:
                        yield TextDelta(text)
                final = await stream.get_final_message()
            yield Usage(final.usage.input_tokens, final.usage.output_tokens)
        except anthropic.APIStatusError as exc:
            retryable = exc.status_code in (429, 529) or exc.status_code >= 500
            raise ProviderError(
                f"provider answered {exc.status_code}", retryable=retryable, status=exc.status_code
            ) from exc
        except (
            UnsafeUrl,
            anthropic.APITimeoutError,
            anthropic.APIConnectionError,
        ) as exc:  # UnsafeUrl: the SDK lets the guard's through
            raise unreachable(exc) from exc
