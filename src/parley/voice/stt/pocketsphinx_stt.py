"""Offline speech-to-text with PocketSphinx; its wheel ships the US English acoustic model,
dictionary and language model, so nothing is downloaded at run time.

A decoder takes about half a second to load and is not thread-safe, so each process keeps one
per model behind a lock, loaded on first use (or at start-up with `warm()`), and decodes in a
worker thread off the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from parley.voice.audio import STT_RATE, Pcm
from parley.voice.errors import SpeechFailed

# Decoder settings measured on the round-trip set (docs/benchmarks.md, voice): batch cepstral
# mean normalisation suits whole utterances, a language weight of 10 (default 6.5) lowers both
# the word error rate and the decoding time, and skipping the second (flat-lexicon) pass
# halves the time for no loss in accuracy there.
DECODER_OPTIONS: dict[str, Any] = {
    "cmn": "batch",
    "lw": 10.0,
    "fwdflat": False,
    "loglevel": "FATAL",
}
MODELS = ("en-us",)

_lock = threading.Lock()
_decoders: dict[str, Any] = {}


def _decoder(model: str) -> Any:
    found = _decoders.get(model)
    if found is None:
        # Imported on first use: loading the package and its model costs start-up time.
        # lazy: voice engine (heavy, optional), loaded on first use
        from pocketsphinx import Decoder

        found = _decoders[model] = Decoder(samprate=STT_RATE, **DECODER_OPTIONS)
    return found


def warm(model: str = "en-us") -> None:
    with _lock:
        _decoder(model)


def _decode(audio: Pcm, model: str) -> str:
    with _lock:
        decoder = _decoder(model)
        decoder.start_utt()
        decoder.process_raw(audio.data, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
    return str(hyp.hypstr) if hyp is not None else ""


class PocketSphinxSTT:
    name = "pocketsphinx"

    async def transcribe(self, audio: Pcm, *, model: str, language: str) -> str:
        if model not in MODELS or not language.lower().startswith("en"):
            raise SpeechFailed(f"pocketsphinx ships English only (model {MODELS[0]!r})")
        if audio.rate != STT_RATE:
            raise SpeechFailed("pocketsphinx takes 16 kHz audio")
        return await asyncio.to_thread(_decode, audio, model)
