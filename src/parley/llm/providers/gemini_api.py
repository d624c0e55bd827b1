"""Google's Gemini API through the official `google-genai` SDK, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import httpx2
from google import genai
from google.genai import errors, types

from parley.kit.ssrf import UnsafeUrl
from parley.llm.base import (
    ProviderError,
    StreamEvent,
    TextDelta,
    TurnRequest,
    Usage,
    unreachable,
)


class GeminiProvider:
    name = "gemini"

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float = 60.0,
        http_client: httpx2.AsyncClient | None = None,
    ):
        # The guarded client for a tenant's own base URL (the SDK then uses it, not aiohttp).
        options = types.HttpOptions(
            base_url=base_url, timeout=int(timeout * 1000), httpx_async_client=http_client
        )
        self.client = genai.Client(api_key=api_key or "not-set", http_options=options)

    async def aclose(self) -> None:
        await self.client.aio.aclose()

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        contents = [
            types.Content(
                role="model" if m.role == "assistant" else "user",
                parts=[types.Part(text=m.content)],
            )
            for m in request.messages
        ]
        config = types.GenerateContentConfig(
            system_instruction=request.system,
            temperature=request.temperature,
            max_output_tokens=request.max_tokens,
        )
        prompt_tokens = completion_tokens = 0
        try:
            stream = await self.client.aio.models.generate_content_stream(
                model=request.model, contents=contents, config=config
            )
            async for chunk in stream:
                if chunk.text:
                    yield TextDelta(chunk.text)
                meta = chunk.usage_metadata
                if meta is not None:
                    prompt_tokens = meta.prompt_token_count or prompt_tokens
                    completion_tokens = meta.candidates_token_count or completion_tokens
            yield Usage(prompt_tokens, completion_tokens)
        except (
            UnsafeUrl,
            httpx.HTTPError,
            httpx2.HTTPError,
        ) as exc:  # UnsafeUrl: the SDK lets the guard's through
            raise unreachable(exc) from exc
        except errors.APIError as exc:
            code = int(exc.code or 0)
            raise ProviderError(
                f"provider answered {code}", retryable=code == 429 or code >= 500, status=code
            ) from exc
