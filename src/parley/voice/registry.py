"""Picks the speech adapters for a bot's voice settings. Network clients are cached per runtime
(never module-global), keyed by where they point and with which key, as the LLM providers are.
The offline adapters hold process-wide engines of their own (see their modules)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from parley.kit.runtime import Runtime
from parley.llm.credentials import ResolvedCredential
from parley.voice.stt.base import SpeechToText
from parley.voice.stt.pocketsphinx_stt import PocketSphinxSTT
from parley.voice.tts.base import TextToSpeech
from parley.voice.tts.espeak import EspeakTTS

T = TypeVar("T")
CREDENTIAL = "openai-speech"  # the provider_credentials row the OpenAI speech adapters use

_pocketsphinx = PocketSphinxSTT()
_espeak = EspeakTTS()


def _endpoint(
    runtime: Runtime, credential: ResolvedCredential | None
) -> tuple[str | None, str | None]:
    """The workspace's own key and base URL when it has one, else the platform's. A workspace
    base URL never receives the platform key."""
    if credential is not None:
        return credential.api_key, credential.base_url
    s = runtime.settings
    key = s.openai_speech_api_key or s.openai_api_key
    base = s.openai_speech_base_url or s.openai_base_url
    return (key.get_secret_value() if key else None), base


def _remote(
    kind: str,
    runtime: Runtime,
    credential: ResolvedCredential | None,
    build: Callable[..., T],
) -> T:
    key, base = _endpoint(runtime, credential)
    timeout = runtime.settings.parley_voice_timeout_seconds
    fingerprint = kind + ":" + hashlib.sha256(f"{base}|{key}".encode()).hexdigest()[:16]
    return runtime.client(fingerprint, lambda: build(base_url=base, api_key=key, timeout=timeout))


def stt_for(
    name: str, runtime: Runtime, credential: ResolvedCredential | None = None
) -> SpeechToText:
    if name != "openai":
        return _pocketsphinx
    # lazy: provider SDK, loaded on first use
    from parley.voice.stt.openai_stt import OpenAISTT  # the SDK loads on first use

    return _remote("stt", runtime, credential, OpenAISTT)


def tts_for(
    name: str, runtime: Runtime, credential: ResolvedCredential | None = None
) -> TextToSpeech:
    if name != "openai":
        return _espeak
    # lazy: provider SDK, loaded on first use
    from parley.voice.tts.openai_tts import OpenAITTS  # the SDK loads on first use

    return _remote("tts", runtime, credential, OpenAITTS)
