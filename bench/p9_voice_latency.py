"""P9 — voice latency: from the end of the visitor's audio to the first byte of reply audio,
through Parley's `POST /v1/widget/voice` (offline defaults: PyAV decode, PocketSphinx, the
turn against the local fake LLM server, eSpeak NG on the first complete sentence), against
the same pipeline run directly in the benchmark's own process, alternating in the same run:
decode → PocketSphinx → the fake LLM's stream → eSpeak NG → WAV bytes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.procs import fake_openai_process, parley_serve, stop_embedded_pg
from bench.report import Row, Section, median, pct
from bench.setup_tenant import make_widget, visitor

UTTERANCE = "what are your opening hours on saturday"
SECONDS = 3.0  # the utterance, padded with silence to a three-second recording


def recording() -> bytes:
    """A three-second WebM/Opus recording (what Chromium's MediaRecorder sends), spoken by the
    offline text-to-speech."""
    from parley.bots.schemas import VoiceSettings
    from parley.voice.audio import Pcm, opus, resample
    from parley.voice.service import choice_of
    from parley.voice.tts.espeak import speak

    pcm = resample(speak(UTTERANCE, choice_of(VoiceSettings())), 16_000)
    total = int(16_000 * SECONDS) * 2
    return opus(Pcm((pcm.data + b"\x00" * total)[:total], 16_000), "webm")


async def _direct(client: httpx.AsyncClient, fake: str, audio: bytes) -> float:
    """The same steps without Parley: no auth, no idempotency, no storage, no ledger."""
    from parley.bots.schemas import VoiceSettings
    from parley.voice.audio import Limits, decode, wav_bytes
    from parley.voice.sentences import SentenceSplitter
    from parley.voice.service import choice_of
    from parley.voice.stt.pocketsphinx_stt import PocketSphinxSTT
    from parley.voice.tts.espeak import speak

    voice = VoiceSettings()
    limits = Limits.parse(2_000_000, 30, "webm,ogg,wav")
    started = time.perf_counter()
    pcm = await asyncio.to_thread(decode, audio, limits)
    text = await PocketSphinxSTT().transcribe(pcm, model="en-us", language="en")
    body = {
        "model": "fake-echo",
        "stream": True,
        "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": text}],
    }
    splitter = SentenceSplitter()
    first: list[str] = []
    async with client.stream("POST", fake + "/chat/completions", json=body) as resp:
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices") or ():
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    first = first or splitter.feed(delta)
            if first:
                break
    first = first or splitter.flush()
    wav = wav_bytes(await asyncio.to_thread(speak, first[0], choice_of(voice)))
    assert wav
    return time.perf_counter() - started


async def _parley(client: httpx.AsyncClient, headers: dict[str, str], audio: bytes) -> float:
    h = {**headers, "Content-Type": "audio/webm", "Idempotency-Key": uuid.uuid4().hex}
    started = time.perf_counter()
    async with client.stream("POST", "/v1/widget/voice", content=audio, headers=h) as resp:
        async for line in resp.aiter_lines():
            if line == "event: audio":
                return time.perf_counter() - started
        raise RuntimeError(f"no audio (HTTP {resp.status_code})")


async def _setup(client: httpx.AsyncClient) -> dict[str, str]:
    w = await make_widget(client, {"provider": "openai", "model": "fake-echo"}, voice=True)
    headers, _ = await visitor(client, w.widget_key)
    return headers


async def _measure(base: str, fake: str, rounds: int) -> tuple[list[float], list[float]]:
    audio = recording()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        headers = await _setup(client)
        for _ in range(2):  # warm-up: load the decoder and the voice on both sides
            await _parley(client, headers, audio)
            await _direct(client, fake, audio)
        direct: list[float] = []
        via: list[float] = []
        for _ in range(rounds):
            direct.append(await _direct(client, fake, audio))
            via.append(await _parley(client, headers, audio))
        return direct, via


def run(quick: bool = False) -> Section:
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-p9-"))
    rounds = 8 if quick else 40
    try:
        with (
            fake_openai_process() as fake,
            parley_serve(
                data_dir,
                extra_env={
                    "OPENAI_BASE_URL": fake,
                    "OPENAI_API_KEY": "sk-bench",
                    "PARLEY_RATE_LIMITS": "off",
                },
            ) as served,
        ):
            direct, via = asyncio.run(_measure(served.base, fake, rounds))
    finally:
        stop_embedded_pg(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    ms = 1000
    p50, p95 = median(via) * ms, pct(via, 95) * ms
    d50, d95 = median(direct) * ms, pct(direct, 95) * ms
    added = p50 - d50
    return Section(
        "P9",
        "Voice latency (end of the visitor's audio → first byte of reply audio)",
        f"A {SECONDS:.0f}-second WebM/Opus recording of “{UTTERANCE}” (made by eSpeak NG, padded "
        "with silence) sent to `POST /v1/widget/voice` on `parley serve` (embedded PostgreSQL, "
        "offline defaults: PyAV, PocketSphinx, eSpeak NG; the bot's model is the local fake "
        "OpenAI-compatible server's `fake-echo`), timed from sending the recording to the "
        "`audio` event of the first sentence; alternating with the same pipeline run directly in "
        f"the benchmark process (decode → PocketSphinx → the fake's stream → eSpeak NG → WAV), "
        f"{rounds} rounds each after two warm-ups, one at a time.",
        ".venv/bin/python -m bench p9",
        [
            Row(
                "through Parley, p50",
                f"{p50:.0f} ms",
                f"{d50:.0f} ms",
                f"{p50 / d50:.2f}×",
                "≤ 800 ms",
                p50 <= 800,
            ),
            Row(
                "through Parley, p95",
                f"{p95:.0f} ms",
                f"{d95:.0f} ms",
                f"{p95 / d95:.2f}×",
                "≤ 1200 ms",
                p95 <= 1200,
            ),
            Row(
                "platform-added, p50",
                f"{added:.0f} ms",
                "",
                f"{added / p50:.1%} of total",
                "≤ 10 % of the total",
                added <= 0.10 * p50,
            ),
            Row(
                "anchor: open voice stacks, p50", "", "1000–1400 ms", f"{p50 / 1000:.2f}×", "", None
            ),
        ],
    )
