"""The offline voice round trip (SPEC C12): each sentence of a fixed set is spoken by eSpeak NG
and heard by PocketSphinx through Parley's own adapters and audio path (synthesis → resample
to 16 kHz with PyAV → decode), and the word error rate is reported.

    PYTHONPATH=src python -m bench voice_wer           # all 50 sentences
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

SENTENCES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "voice" / "sentences.txt"


def sentences() -> list[str]:
    return [s.strip() for s in SENTENCES.read_text().splitlines() if s.strip()]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length): substitutions + deletions + insertions."""
    ref, hyp = reference.lower().split(), hypothesis.lower().split()
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1], len(ref)


@dataclass(frozen=True)
class RoundTrip:
    wer: float
    sentences: int
    audio_seconds: float
    stt_seconds: float
    pairs: list[tuple[str, str]]


async def round_trip(texts: list[str]) -> RoundTrip:
    from parley.bots.schemas import VoiceSettings
    from parley.voice.audio import STT_RATE, resample
    from parley.voice.service import choice_of
    from parley.voice.stt.pocketsphinx_stt import PocketSphinxSTT
    from parley.voice.tts.espeak import speak

    voice = VoiceSettings()
    stt = PocketSphinxSTT()
    errors = words = 0
    heard_seconds = stt_seconds = 0.0
    pairs = []
    for text in texts:
        pcm = resample(speak(text, choice_of(voice)), STT_RATE)
        started = time.perf_counter()
        heard = await stt.transcribe(pcm, model=voice.stt_model, language=voice.language)
        stt_seconds += time.perf_counter() - started
        heard_seconds += pcm.seconds
        e, n = word_errors(text, heard)
        errors, words = errors + e, words + n
        pairs.append((text, heard))
    return RoundTrip(errors / max(words, 1), len(texts), heard_seconds, stt_seconds, pairs)


def main() -> str:
    result = asyncio.run(round_trip(sentences()))
    for ref, hyp in result.pairs:
        print(f"  {ref!r} -> {hyp!r}")
    rtf = result.stt_seconds / result.audio_seconds
    return (
        f"| voice round trip (eSpeak NG → PocketSphinx) | {result.sentences} sentences | "
        f"WER {result.wer:.3f} | {result.audio_seconds:.1f} s of speech decoded in "
        f"{result.stt_seconds:.2f} s (real-time factor {rtf:.3f}) |"
    )


if __name__ == "__main__":
    print(main())
