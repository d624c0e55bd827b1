"""The text-to-speech port: one sentence in, PCM chunks out as they are made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from parley.voice.audio import Pcm


@dataclass(frozen=True)
class VoiceChoice:
    model: str
    voice: str
    language: str
    speed: float


class TextToSpeech(Protocol):
    name: str

    def synthesize(self, text: str, choice: VoiceChoice) -> AsyncIterator[Pcm]: ...
