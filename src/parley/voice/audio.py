"""Audio in and out with PyAV (its wheel carries FFmpeg; no system FFmpeg is used).

Uploads are spooled to a temporary file as they arrive (so a large or slow upload never sits
in memory and the size limit stops it early), decoded to 16 kHz mono 16-bit PCM for the
speech-to-text adapters, and the file is removed on every path, errors and disconnects
included. Synthesised speech leaves as WAV (the widget) or OGG/Opus (Telegram voice notes).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
import wave
from array import array
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from parley.voice.errors import (
    AudioTooLarge,
    AudioTooLong,
    CorruptAudio,
    EmptyAudio,
    UnsupportedAudio,
)

STT_RATE = 16_000  # what the speech-to-text adapters take
TMP_PREFIX = "parley-voice-"


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_seconds: float
    formats: frozenset[str]  # PyAV/FFmpeg demuxer names: webm, ogg, wav, mp4, mp3…

    @classmethod
    def parse(cls, max_bytes: int, max_seconds: float, formats: str) -> Limits:
        names = frozenset(f.strip().lower() for f in formats.split(",") if f.strip())
        return cls(max_bytes, max_seconds, names)


@dataclass(frozen=True)
class Pcm:
    """Mono signed 16-bit little-endian samples."""

    data: bytes
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.data) / 2 / self.rate if self.rate else 0.0


def tmp_dir(configured: str | None) -> Path:
    path = Path(configured or tempfile.gettempdir())
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.asynccontextmanager
async def spooled(
    chunks: AsyncIterator[bytes], limits: Limits, directory: Path
) -> AsyncIterator[Path]:
    """The upload written to a temporary file, size-checked as it arrives; the file is gone
    when the block ends, however it ends (a limit, a decoding error, the client leaving)."""
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".upload", dir=directory)
    path = Path(name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > limits.max_bytes:
                    raise AudioTooLarge(f"The upload is over the {limits.max_bytes}-byte limit.")
                out.write(chunk)
        if size == 0:
            raise EmptyAudio("The upload has no bytes.")
        yield path
    finally:
        path.unlink(missing_ok=True)  # noqa: ASYNC240  (one unlink; not worth a thread)


# The containers a voice upload may use, by the names the settings list, with the FFmpeg
# demuxer each is opened with. The demuxer is chosen from the file's first bytes, never by
# FFmpeg's own probing: that would also accept playlists (HLS, concat) that make FFmpeg open
# other files and URLs.
DEMUXERS = {"webm": "matroska", "ogg": "ogg", "wav": "wav", "mp4": "mov", "mp3": "mp3"}


def sniff(head: bytes) -> str | None:
    """The container of a file from its first bytes (one of `DEMUXERS`' keys), or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska, which WebM is
        return "webm"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def _head(source: Path | bytes) -> bytes:
    if isinstance(source, bytes):
        return source[:16]
    with source.open("rb") as f:
        return f.read(16)


def decode(source: Path | bytes, limits: Limits) -> Pcm:
    """Decode to 16 kHz mono PCM, refusing containers not on the list, audio longer than the
    limit (decoding stops there) and anything FFmpeg cannot read. Runs in a worker thread."""
    kind = sniff(_head(source))
    if kind is None or kind not in limits.formats:
        accepted = ", ".join(sorted(limits.formats & DEMUXERS.keys()))
        raise UnsupportedAudio(f"Accepted containers: {accepted}.")
    handle: str | io.BytesIO = str(source) if isinstance(source, Path) else io.BytesIO(source)
    try:
        container = av.open(handle, "r", format=DEMUXERS[kind], metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise CorruptAudio("The file is not audio FFmpeg can read.") from exc
    with container:
        if not container.streams.audio:
            raise UnsupportedAudio("The file has no audio track.")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=STT_RATE)
        out = bytearray()
        max_bytes = int(limits.max_seconds * STT_RATE) * 2
        try:
            for frame in container.decode(audio=0):
                for piece in resampler.resample(frame):
                    out += bytes(piece.planes[0])[: piece.samples * 2]
                if len(out) > max_bytes:
                    raise AudioTooLong(f"The audio is longer than {limits.max_seconds:g} s.")
            for piece in resampler.resample(None):
                out += bytes(piece.planes[0])[: piece.samples * 2]
        except (av.error.FFmpegError, ValueError) as exc:
            raise CorruptAudio("The audio stream is damaged.") from exc
    if len(out) > max_bytes:
        raise AudioTooLong(f"The audio is longer than {limits.max_seconds:g} s.")
    if len(out) < STT_RATE // 10 * 2:  # under 0.1 s: nothing to listen to
        raise EmptyAudio("The audio has no samples.")
    return Pcm(bytes(out), STT_RATE)


SILENCE_RMS = 60.0  # of 32767: below this the recording is silence (or a muted microphone)


def is_silent(pcm: Pcm) -> bool:
    """No sound worth transcribing: checked before speech-to-text, which would otherwise spend
    its time on silence (and some engines then hear words in it)."""
    samples = array("h", pcm.data[: len(pcm.data) // 2 * 2])[::4]
    if not samples:
        return True
    return math.sqrt(sum(x * x for x in samples) / len(samples)) < SILENCE_RMS


def _frame(pcm: Pcm) -> av.AudioFrame:
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm.data) // 2)
    frame.planes[0].update(pcm.data[: (len(pcm.data) // 2) * 2])
    frame.sample_rate = pcm.rate
    return frame


def _resampled(pcm: Pcm, rate: int, frame_size: int | None = None) -> Iterator[av.AudioFrame]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate, frame_size=frame_size)
    yield from resampler.resample(_frame(pcm))
    yield from resampler.resample(None)


def resample(pcm: Pcm, rate: int) -> Pcm:
    if pcm.rate == rate or not pcm.data:
        return Pcm(pcm.data, rate)
    data = b"".join(bytes(f.planes[0])[: f.samples * 2] for f in _resampled(pcm, rate))
    return Pcm(data, rate)


def wav_bytes(pcm: Pcm) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(pcm.rate)
        w.writeframes(pcm.data)
    return buf.getvalue()


def opus(pcm: Pcm, container: str = "ogg") -> bytes:
    """Opus in OGG (what Telegram's sendVoice plays as a voice message) or WebM (what
    browsers' MediaRecorder makes), mono at 48 kHz."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        for frame in _resampled(pcm, 48_000, frame_size=960):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def ogg_opus(pcm: Pcm) -> bytes:
    return opus(pcm, "ogg")
