"""The voice turn (SPEC C12): audio in → transcript stored as the visitor's message, marked as
spoken → the usual turn, streamed (the widget's own send path, not a copy of it) → speech out,
sentence by sentence as the reply streams.

The answer is one SSE stream (decision 0025): `transcript`, then the turn's `reply.delta`
events interleaved with `audio` events (each a base64 WAV of one sentence, made as soon as
that sentence is complete), then `reply.completed` and `voice.completed` — or an `error`
problem. The visitor interrupts (barge-in) by closing the stream: synthesis of the rest stops
there, the text reply is still stored (as for a text send whose visitor leaves), and the
ledger row says `interrupted` with the speech actually made.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.bots.schemas import BotConfig, VoiceSettings
from parley.bots.service import BotNotFound
from parley.conversations import repository as conv_repo
from parley.conversations import send
from parley.kit.db import TenantId, tenant_session
from parley.kit.metrics import SSE_CONNECTIONS, VOICE_FAILURES, VOICE_TURNS
from parley.kit.runtime import Runtime
from parley.kit.sse import sse_event
from parley.llm.credentials import ResolvedCredential
from parley.llm.credentials import resolve as resolve_credential
from parley.usage.service import month_start
from parley.voice import audio, resilience
from parley.voice import repository as repo
from parley.voice.audio import Limits, Pcm
from parley.voice.errors import NothingHeard, VoiceDisabled, VoiceError
from parley.voice.registry import CREDENTIAL, stt_for, tts_for
from parley.voice.schemas import VoiceWorkspaceSettings, VoiceWorkspaceUpdate
from parley.voice.sentences import SentenceSplitter
from parley.voice.tts.base import VoiceChoice
from parley.widget.auth import WidgetCaller

log = structlog.get_logger(__name__)


_background: set[asyncio.Task[None]] = set()


def limits(runtime: Runtime) -> Limits:
    s = runtime.settings
    return Limits.parse(
        s.parley_voice_max_upload_bytes, s.parley_voice_max_seconds, s.parley_voice_formats
    )


def choice_of(voice: VoiceSettings) -> VoiceChoice:
    return VoiceChoice(voice.tts_model, voice.voice, voice.language, voice.speed)


def _prices(runtime: Runtime) -> dict[str, float]:
    raw = runtime.settings.parley_voice_prices
    if not raw:
        return {}
    try:
        table = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): float(v) for k, v in table.items() if isinstance(v, int | float)}


def cost_usd(runtime: Runtime, voice: VoiceSettings, heard: float, spoken: float) -> float:
    """Per-minute prices from `PARLEY_VOICE_PRICES`; the offline engines cost nothing."""
    prices = _prices(runtime)
    stt = prices.get(f"{voice.stt_provider}:{voice.stt_model}", 0.0)
    tts = prices.get(f"{voice.tts_provider}:{voice.tts_model}", 0.0)
    return round(stt * heard / 60 + tts * spoken / 60, 6)


def failed(kind: str) -> None:
    VOICE_FAILURES.labels(kind).inc()


@dataclass(frozen=True)
class Heard:
    """An utterance, decoded and transcribed."""

    text: str
    seconds: float
    stt_ms: int
    upload_done: float  # perf_counter when the last byte arrived: P9's clock starts here
    kept: bytes | None  # the upload as sent, when the workspace keeps audio
    kept_format: str | None


async def credential_for(
    runtime: Runtime, tenant_id: TenantId, voice: VoiceSettings
) -> ResolvedCredential | None:
    if "openai" not in (voice.stt_provider, voice.tts_provider):
        return None
    async with tenant_session(runtime.db, tenant_id) as session:
        return await resolve_credential(session, runtime, tenant_id, CREDENTIAL)


async def transcribe(
    runtime: Runtime,
    voice: VoiceSettings,
    pcm: Pcm,
    credential: ResolvedCredential | None,
) -> str:
    stt = stt_for(voice.stt_provider, runtime, credential)
    text = await resilience.transcribe(
        runtime, stt, pcm, model=voice.stt_model, language=voice.language
    )
    return " ".join(text.split())


async def listen(
    runtime: Runtime,
    voice: VoiceSettings,
    chunks: AsyncIterator[bytes],
    credential: ResolvedCredential | None,
    *,
    keep: bool,
    content_type: str | None = None,
) -> Heard:
    """Spool, decode and transcribe an upload; the temporary file is gone when this returns
    or raises. Empty speech is a problem, not an empty message."""
    lim = limits(runtime)
    directory = audio.tmp_dir(runtime.settings.parley_voice_tmp_dir)
    async with audio.spooled(chunks, lim, directory) as path:
        upload_done = time.perf_counter()
        pcm = await asyncio.to_thread(audio.decode, path, lim)
        kept = path.read_bytes() if keep else None
    if audio.is_silent(pcm):
        raise NothingHeard("The recording is silent.")
    started = time.perf_counter()
    text = await transcribe(runtime, voice, pcm, credential)
    stt_ms = int((time.perf_counter() - started) * 1000)
    if not text:
        raise NothingHeard()
    fmt = (content_type or "").split(";")[0].strip()[:16] or None
    return Heard(text, pcm.seconds, stt_ms, upload_done, kept, fmt if keep else None)


async def speak(
    runtime: Runtime,
    voice: VoiceSettings,
    text: str,
    credential: ResolvedCredential | None,
) -> AsyncIterator[Pcm]:
    tts = tts_for(voice.tts_provider, runtime, credential)
    async for piece in resilience.synthesize(runtime, tts, text, choice_of(voice)):
        yield piece


# --- the widget's voice turn --------------------------------------------------------------


@dataclass
class VoiceTurn:
    caller: WidgetCaller
    voice: VoiceSettings
    credential: ResolvedCredential | None
    heard: Heard
    outcome: send.Started | send.Replayed | send.Held
    upload_done: float  # perf_counter at the end of the upload: P9's clock starts here
    spoken_seconds: float = 0.0
    first_audio_ms: int | None = None
    reply_id: uuid.UUID | None = None
    status: str = "interrupted"
    error: str | None = None


async def _widget_context(
    runtime: Runtime, caller: WidgetCaller
) -> tuple[VoiceSettings, bool, ResolvedCredential | None]:
    async with tenant_session(runtime.db, caller.tenant_id) as session:
        found = await repo.turn_context(session, caller.tenant_id, caller.channel_id, caller.bot_id)
    if found is None:
        raise BotNotFound("This chat's bot no longer exists.")
    channel_config, bot_config, keep = found
    if not channel_config.get("voice"):
        raise VoiceDisabled()
    voice = BotConfig.model_validate(bot_config).voice
    return voice, keep, await credential_for(runtime, caller.tenant_id, voice)


async def start_widget_turn(
    runtime: Runtime,
    caller: WidgetCaller,
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    idem_key: str | None,
) -> VoiceTurn:
    """Everything before the first byte of the answer: a failure here is a plain problem
    response, and nothing is stored."""
    try:
        voice, keep, credential = await _widget_context(runtime, caller)
        heard = await listen(
            runtime, voice, chunks, credential, keep=keep, content_type=content_type
        )
        outcome = await send.send_message(
            runtime, caller, heard.text, idem_key, scope_prefix="voice", spoken=True
        )
    except VoiceError as exc:
        failed(exc.code)
        VOICE_TURNS.labels("widget", "failed").inc()
        raise
    return VoiceTurn(caller, voice, credential, heard, outcome, heard.upload_done)


def _audio_event(turn: VoiceTurn, seq: int, pcm: Pcm, text: str) -> bytes:
    if turn.first_audio_ms is None:
        turn.first_audio_ms = int((time.perf_counter() - turn.upload_done) * 1000)
    turn.spoken_seconds += pcm.seconds
    data = base64.b64encode(audio.wav_bytes(pcm)).decode()
    payload = {"seq": seq, "mime": "audio/wav", "seconds": round(pcm.seconds, 3), "text": text}
    return sse_event("audio", {**payload, "data": data})


async def _speak_events(
    runtime: Runtime, turn: VoiceTurn, sentences: list[str], seq: list[int]
) -> AsyncIterator[bytes]:
    for sentence in sentences:
        async for pcm in speak(runtime, turn.voice, sentence, turn.credential):
            yield _audio_event(turn, seq[0], pcm, sentence)
            seq[0] += 1
            sentence = ""  # the caption goes with the sentence's first piece


async def stream_widget_turn(runtime: Runtime, turn: VoiceTurn) -> AsyncIterator[bytes]:
    SSE_CONNECTIONS.labels("voice").inc()
    outcome = turn.outcome
    seq = [0]
    try:
        yield sse_event("transcript", {"text": turn.heard.text, "message": outcome.user_message})
        if isinstance(outcome, send.Held):
            # A person holds the conversation (or this message asked for one): no turn ran.
            # What the visitor is told (the handoff or offline message) is spoken like a reply.
            said = outcome.handoff.message
            reply: dict[str, Any] | None = said.model_dump(mode="json") if said else None
            if reply is not None:
                yield sse_event("reply.completed", reply, reply["id"])
                splitter = SentenceSplitter()
                said_sentences = splitter.feed(str(reply["content"])) + splitter.flush()
                async for event in _speak_events(runtime, turn, said_sentences, seq):
                    yield event
            yield sse_event(
                "conversation.status",
                {
                    "handoff_status": outcome.handoff.handoff_status,
                    "ask_email": outcome.handoff.ask_email,
                },
            )
            if reply is not None:
                turn.reply_id = uuid.UUID(str(reply["id"]))
            turn.status = "succeeded"
            yield sse_event(
                "voice.completed",
                {
                    "input_seconds": round(turn.heard.seconds, 3),
                    "output_seconds": round(turn.spoken_seconds, 3),
                    "first_audio_ms": turn.first_audio_ms,
                },
            )
            return
        if isinstance(outcome, send.Replayed):
            reply = outcome.reply
            yield sse_event("reply.completed", outcome.reply, outcome.reply["id"])
            splitter = SentenceSplitter()
            text_sentences = splitter.feed(str(outcome.reply["content"])) + splitter.flush()
            async for event in _speak_events(runtime, turn, text_sentences, seq):
                yield event
        else:
            splitter = SentenceSplitter()
            while True:
                chunk = await outcome.deltas.get()
                if chunk is None:
                    break
                yield sse_event("reply.delta", {"text": chunk})
                async for event in _speak_events(runtime, turn, splitter.feed(chunk), seq):
                    yield event
            result = await asyncio.shield(outcome.task)  # a disconnect must not cancel the turn
            reply = result.reply
            if reply is None:
                turn.status, turn.error = "failed", str((result.error or {}).get("code"))
                failed(turn.error)
                yield sse_event("error", result.error)
                return
            async for event in _speak_events(runtime, turn, splitter.flush(), seq):
                yield event
            yield sse_event("reply.completed", reply, reply["id"])
        assert reply is not None
        turn.reply_id = uuid.UUID(str(reply["id"]))
        turn.status = "succeeded"
        yield sse_event(
            "voice.completed",
            {
                "input_seconds": round(turn.heard.seconds, 3),
                "output_seconds": round(turn.spoken_seconds, 3),
                "first_audio_ms": turn.first_audio_ms,
            },
        )
    except VoiceError as exc:  # synthesis failed mid-way: say so, end the stream cleanly
        turn.status, turn.error = "failed", exc.code
        failed(exc.code)
        yield sse_event("error", exc.problem())
    finally:
        SSE_CONNECTIONS.labels("voice").dec()
        VOICE_TURNS.labels("widget", turn.status).inc()
        # Shielded, on a task kept referenced: a barge-in cancels this generator, and the
        # ledger must still be written.
        record = asyncio.create_task(_record_widget_turn(runtime, turn))
        _background.add(record)
        record.add_done_callback(_background.discard)
        await asyncio.shield(record)


async def _record_widget_turn(runtime: Runtime, turn: VoiceTurn) -> None:
    message_id = uuid.UUID(str(turn.outcome.user_message["id"]))
    try:
        async with tenant_session(runtime.db, turn.caller.tenant_id) as session:
            await conv_repo.mark_spoken(session, turn.caller.tenant_id, message_id)
            repo.add_turn(
                session,
                turn.caller.tenant_id,
                conversation_id=turn.caller.conversation_id,
                channel="widget",
                message_id=message_id,
                reply_message_id=turn.reply_id,
                stt_provider=turn.voice.stt_provider,
                stt_model=turn.voice.stt_model,
                tts_provider=turn.voice.tts_provider,
                tts_model=turn.voice.tts_model,
                status=turn.status,
                error=turn.error,
                input_seconds=round(turn.heard.seconds, 3),
                output_seconds=round(turn.spoken_seconds, 3),
                stt_ms=turn.heard.stt_ms,
                first_audio_ms=turn.first_audio_ms,
                cost_usd=cost_usd(runtime, turn.voice, turn.heard.seconds, turn.spoken_seconds),
                audio=turn.heard.kept,
                audio_format=turn.heard.kept_format,
                finished_at=datetime.now(UTC),
            )
    except Exception:  # the reply is stored; a lost ledger row must not break the stream
        log.exception("voice.ledger_not_written", tenant_id=str(turn.caller.tenant_id))


# --- workspace settings -------------------------------------------------------------------


async def settings(session: AsyncSession, tenant_id: TenantId) -> VoiceWorkspaceSettings:
    return VoiceWorkspaceSettings(
        retain_audio=await repo.retention(session, tenant_id),
        voice_seconds_this_month=round(
            await repo.voice_seconds(session, tenant_id, month_start(datetime.now(UTC))), 3
        ),
    )


async def update_settings(
    session: AsyncSession, tenant_id: TenantId, body: VoiceWorkspaceUpdate, *, actor: str
) -> VoiceWorkspaceSettings:
    before = await repo.retention(session, tenant_id)
    await repo.set_retention(session, tenant_id, body.retain_audio)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="voice.settings_updated",
        target_type="tenant",
        target_id=tenant_id,
        before={"retain_audio": before},
        after={"retain_audio": body.retain_audio},
    )
    return await settings(session, tenant_id)
