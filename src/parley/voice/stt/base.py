"""The speech-to-text port: 16 kHz mono PCM in, text out."""

from __future__ import annotations

from typing import Protocol

from parley.voice.audio import Pcm


class SpeechToText(Protocol):
    name: str

    async def transcribe(self, audio: Pcm, *, model: str, language: str) -> str: ...
