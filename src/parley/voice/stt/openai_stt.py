"""Any OpenAI-compatible transcription server (`POST /v1/audio/transcriptions`): OpenAI, and
the self-hosted Whisper servers that copy its API (faster-whisper-server/speaches,
whisper.cpp's server, LocalAI, vLLM)."""

from __future__ import annotations

import openai

from parley.voice.audio import Pcm, wav_bytes
from parley.voice.errors import SpeechFailed


class OpenAISTT:
    name = "openai"

    def __init__(self, *, base_url: str | None, api_key: str | None, timeout: float) -> None:
        self.client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=0,  # retries and the breaker are ours (voice/resilience.py)
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def transcribe(self, audio: Pcm, *, model: str, language: str) -> str:
        try:
            result = await self.client.audio.transcriptions.create(
                file=("speech.wav", wav_bytes(audio), "audio/wav"),
                model=model,
                language=language.split("-")[0].lower(),
                response_format="json",
            )
        except openai.APIStatusError as exc:
            retryable = exc.status_code == 429 or exc.status_code >= 500
            raise SpeechFailed(f"stt answered {exc.status_code}", retryable=retryable) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise SpeechFailed(f"stt unreachable: {type(exc).__name__}", retryable=True) from exc
        return str(getattr(result, "text", "") or "")
