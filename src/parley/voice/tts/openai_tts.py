"""Any OpenAI-compatible speech server (`POST /v1/audio/speech`): OpenAI, and self-hosted
servers that copy its API (speaches, Kokoro-FastAPI, openedai-speech, LocalAI). Asks for raw
`pcm` (24 kHz mono 16-bit) and hands it on in pieces as the response streams in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai

from parley.voice.audio import Pcm
from parley.voice.errors import SpeechFailed
from parley.voice.tts.base import VoiceChoice

PCM_RATE = 24_000  # the `pcm` response format of the OpenAI speech API
PIECE_BYTES = PCM_RATE  # half a second of audio per piece handed on


class OpenAITTS:
    name = "openai"

    def __init__(self, *, base_url: str | None, api_key: str | None, timeout: float) -> None:
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=0
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def synthesize(self, text: str, choice: VoiceChoice) -> AsyncIterator[Pcm]:
        try:
            async with self.client.audio.speech.with_streaming_response.create(
                model=choice.model,
                voice=choice.voice,
                input=text,
                response_format="pcm",
                speed=choice.speed,
            ) as response:
                pending = b""
                async for chunk in response.iter_bytes():
                    pending += chunk
                    if len(pending) >= PIECE_BYTES:
                        cut = len(pending) - len(pending) % 2
                        yield Pcm(pending[:cut], PCM_RATE)
                        pending = pending[cut:]
                if len(pending) >= 2:
                    yield Pcm(pending[: len(pending) - len(pending) % 2], PCM_RATE)
        except openai.APIStatusError as exc:
            retryable = exc.status_code == 429 or exc.status_code >= 500
            raise SpeechFailed(f"tts answered {exc.status_code}", retryable=retryable) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise SpeechFailed(f"tts unreachable: {type(exc).__name__}", retryable=True) from exc
