"""Timeouts, retries and a circuit breaker around the speech adapters, the same policy as the
LLM providers (llm/resilience.py): a retryable failure is tried again with jittered backoff;
after repeated failures an endpoint is skipped for a while and the visitor gets a fast 503
instead of a wait for a dead upstream. Synthesis is retried only before its first audio piece:
after that the visitor has heard it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from parley.kit.metrics import VOICE_STT_SECONDS, VOICE_TTS_SECONDS
from parley.kit.runtime import Runtime
from parley.llm.resilience import CircuitBreaker, retry_delay
from parley.voice.audio import Pcm
from parley.voice.errors import SpeechFailed, SpeechUnavailable
from parley.voice.stt.base import SpeechToText
from parley.voice.tts.base import TextToSpeech, VoiceChoice


def breaker_for(runtime: Runtime, kind: str, adapter: object, model: str) -> CircuitBreaker:
    name = getattr(adapter, "name", "?")
    return runtime.client(
        f"voice-breaker:{kind}:{name}:{id(adapter)}:{model}",
        lambda: CircuitBreaker(
            failure_threshold=runtime.settings.parley_voice_breaker_failures,
            reset_after=runtime.settings.parley_voice_breaker_reset_seconds,
        ),
    )


def _unavailable(kind: str, exc: Exception | None) -> SpeechUnavailable:
    what = "speech-to-text" if kind == "stt" else "text-to-speech"
    detail = f"The {what} service is unavailable right now; please try again."
    if isinstance(exc, SpeechFailed) and not exc.retryable:
        detail = f"The {what} service refused the request: {exc}"
    return SpeechUnavailable(detail)


async def transcribe(
    runtime: Runtime, stt: SpeechToText, audio: Pcm, *, model: str, language: str
) -> str:
    breaker = breaker_for(runtime, "stt", stt, model)
    if not breaker.allow():
        raise _unavailable("stt", None)
    settings = runtime.settings
    last: Exception | None = None
    for attempt in range(settings.parley_voice_retries + 1):
        started = time.perf_counter()
        try:
            async with asyncio.timeout(settings.parley_voice_timeout_seconds):
                text = await stt.transcribe(audio, model=model, language=language)
        except (SpeechFailed, TimeoutError) as exc:
            last = exc
            if isinstance(exc, SpeechFailed) and not exc.retryable:
                break
            if attempt < settings.parley_voice_retries:
                await asyncio.sleep(retry_delay(attempt))
            continue
        VOICE_STT_SECONDS.labels(stt.name).observe(time.perf_counter() - started)
        breaker.record_success()
        return text
    breaker.record_failure()
    raise _unavailable("stt", last)


async def synthesize(
    runtime: Runtime, tts: TextToSpeech, text: str, choice: VoiceChoice
) -> AsyncIterator[Pcm]:
    breaker = breaker_for(runtime, "tts", tts, choice.model)
    if not breaker.allow():
        raise _unavailable("tts", None)
    settings = runtime.settings
    last: Exception | None = None
    for attempt in range(settings.parley_voice_retries + 1):
        started = time.perf_counter()
        produced = False
        try:
            pieces = aiter(tts.synthesize(text, choice))
            while True:
                async with asyncio.timeout(settings.parley_voice_timeout_seconds):
                    try:
                        piece = await anext(pieces)
                    except StopAsyncIteration:
                        break
                if not produced:
                    VOICE_TTS_SECONDS.labels(tts.name).observe(time.perf_counter() - started)
                produced = True
                yield piece
        except (SpeechFailed, TimeoutError) as exc:
            last = exc
            if produced:
                breaker.record_failure()
                raise _unavailable("tts", exc) from exc
            if isinstance(exc, SpeechFailed) and not exc.retryable:
                break
            if attempt < settings.parley_voice_retries:
                await asyncio.sleep(retry_delay(attempt))
            continue
        breaker.record_success()
        return
    breaker.record_failure()
    raise _unavailable("tts", last)
