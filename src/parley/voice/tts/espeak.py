"""Offline text-to-speech with eSpeak NG, driven through ctypes. `espeakng-loader`'s wheel
ships the library and its voice data, so nothing is installed or downloaded at run time.

eSpeak NG keeps global state (one voice, one callback per process), so synthesis is serialised
behind a lock and runs in a worker thread; a sentence takes a few milliseconds.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import AsyncIterator
from typing import Any

from parley.voice.audio import Pcm
from parley.voice.errors import SpeechFailed
from parley.voice.tts.base import VoiceChoice

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE = 1
_CHARS_UTF8 = 1
_BASE_WPM = 150  # a natural speaking pace (eSpeak's own default, 175, is brisk)

_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Engine:
    def __init__(self) -> None:
        # Imported on first use: it locates the bundled shared library and data.
        # lazy: voice engine (heavy, optional), loaded on first use
        import espeakng_loader

        lib: Any = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = str(espeakng_loader.get_data_path()).encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate <= 0:
            raise SpeechFailed("eSpeak NG did not start")
        self.lib = lib
        self.rate = int(rate)
        self.chunks: list[bytes] = []
        self.callback = _Callback(self._collect)  # kept: the library holds a raw pointer
        lib.espeak_SetSynthCallback(self.callback)
        self.voice: bytes | None = None

    def _collect(self, wav: Any, samples: int, _events: Any) -> int:
        if samples > 0 and wav:
            self.chunks.append(ctypes.string_at(wav, samples * 2))
        return 0  # 0: go on

    def speak(self, text: str, choice: VoiceChoice) -> bytes:
        wanted = choice.voice.encode()
        if wanted != self.voice:
            if self.lib.espeak_SetVoiceByName(wanted) != 0:
                fallback = choice.language.encode()
                if self.lib.espeak_SetVoiceByName(fallback) != 0:
                    raise SpeechFailed(f"eSpeak NG has no voice {choice.voice!r}")
            self.voice = wanted
        wpm = max(80, min(450, round(_BASE_WPM * choice.speed)))
        self.lib.espeak_SetParameter(_ESPEAK_RATE, wpm, 0)
        raw = text.encode()
        self.chunks = []
        err = self.lib.espeak_Synth(raw, len(raw) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if err != 0:
            raise SpeechFailed(f"eSpeak NG failed ({err})")
        return b"".join(self.chunks)


_lock = threading.Lock()
_engine: _Engine | None = None


def _speak(text: str, choice: VoiceChoice) -> Pcm:
    global _engine
    with _lock:
        if _engine is None:
            _engine = _Engine()
        return Pcm(_engine.speak(text, choice), _engine.rate)


def speak(text: str, choice: VoiceChoice) -> Pcm:
    """Synchronous synthesis (tests and the benchmark's direct pipeline use it)."""
    return _speak(text, choice)


class EspeakTTS:
    name = "espeak"

    async def synthesize(self, text: str, choice: VoiceChoice) -> AsyncIterator[Pcm]:
        pcm = await asyncio.to_thread(_speak, text, choice)
        if pcm.data:
            yield pcm
