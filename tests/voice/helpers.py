"""Audio for the voice tests, made by the offline text-to-speech (so no recording is checked
in) and packed into the containers browsers and Telegram send."""

from __future__ import annotations

import functools
import os
import tempfile

from parley.bots.schemas import VoiceSettings
from parley.voice.audio import TMP_PREFIX, Pcm, ogg_opus, opus, resample, wav_bytes
from parley.voice.service import choice_of
from parley.voice.tts.espeak import speak


@functools.cache
def spoken(text: str, rate: int = 16_000) -> Pcm:
    return resample(speak(text, choice_of(VoiceSettings())), rate)


def spoken_wav(text: str) -> bytes:
    return wav_bytes(spoken(text))


def spoken_ogg(text: str) -> bytes:
    return ogg_opus(spoken(text))


def spoken_webm(text: str) -> bytes:
    """WebM/Opus, what Chromium's MediaRecorder sends."""
    return opus(spoken(text), "webm")


def silence_wav(seconds: float) -> bytes:
    return wav_bytes(Pcm(b"\x00\x00" * int(16_000 * seconds), 16_000))


def leftover_temp_files(directory: str | None = None) -> list[str]:
    where = directory or tempfile.gettempdir()
    if not os.path.isdir(where):
        return []
    return [n for n in os.listdir(where) if n.startswith(TMP_PREFIX)]
