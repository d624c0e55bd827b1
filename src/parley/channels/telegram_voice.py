"""Telegram voice messages (SPEC C12): the OGG/Opus note is downloaded (`getFile`), decoded
and transcribed before the event is processed like a text message, and the reply is also sent
as a voice note (`sendVoice`) when the bot turns that on.

The transcript is written onto the inbound event, so a retried job never transcribes twice;
the voice ledger row's id rides in the event's payload so the voice reply can add its speech
time to the same row.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select, update

from parley.bots.schemas import BotConfig, VoiceSettings
from parley.channels import telegram
from parley.conversations import chat
from parley.kit.db import TenantId, tenant_session
from parley.kit.ids import new_id
from parley.kit.metrics import VOICE_TURNS
from parley.kit.runtime import Runtime
from parley.models import Channel, InboundEvent, VoiceTurn
from parley.voice import audio, service
from parley.voice import repository as repo
from parley.voice.errors import NothingHeard, SpeechUnavailable, VoiceError

log = structlog.get_logger(__name__)

LEDGER_KEY = "parley_voice_turn"  # where the event's payload keeps its voice_turns id


class VoiceRetryLater(Exception):
    """Telegram or the speech service failed in a way that may pass: retry the job."""


async def _voice_settings(
    runtime: Runtime, tenant_id: TenantId, bot_id: uuid.UUID
) -> tuple[VoiceSettings, bool]:
    async with tenant_session(runtime.db, tenant_id) as session:
        found = await repo.published_config(session, tenant_id, bot_id)
    if found is None:
        return VoiceSettings(), False
    return BotConfig.model_validate(found[0]).voice, found[1]


async def transcribe_event(runtime: Runtime, tenant_id: TenantId, event_id: uuid.UUID) -> str:
    """Give a stored voice event its text. Returns "ready" when the event can be processed as
    text (it was not a voice message, or is transcribed now), or the problem code that made
    it fail for good (the event is then marked failed). Raises VoiceRetryLater."""
    async with tenant_session(runtime.db, tenant_id) as session:
        row = (
            await session.execute(
                select(InboundEvent, Channel)
                .join(
                    Channel,
                    (Channel.tenant_id == InboundEvent.tenant_id)
                    & (Channel.id == InboundEvent.channel_id),
                )
                .where(InboundEvent.tenant_id == tenant_id, InboundEvent.id == event_id)
            )
        ).first()
        if row is None:
            return "ready"
        ev, ch = row
        file_id = telegram.voice_file_id(dict(ev.payload or {}))
        if ev.text or ev.user_message_id:
            return "ready"  # another run transcribed it
        if ch.type != "telegram" or file_id is None:
            return await _fail(runtime, tenant_id, event_id, "no_text")
        token = runtime.keyring.decrypt(ch.token_encrypted) if ch.token_encrypted else None
        base = telegram.base_url(runtime, dict(ch.config or {}))
        bot_id, channel_id, contact = ch.bot_id, ch.id, ev.external_user_id
    if token is None:
        return await _fail(runtime, tenant_id, event_id, "no_bot_token")
    voice, keep = await _voice_settings(runtime, tenant_id, bot_id)
    lim = service.limits(runtime)
    try:
        data = await telegram.download_file(runtime, base, token, file_id, lim.max_bytes)
        pcm = await asyncio.to_thread(audio.decode, data, lim)
        if audio.is_silent(pcm):
            raise NothingHeard("The recording is silent.")
        credential = await service.credential_for(runtime, tenant_id, voice)
        started = time.perf_counter()
        text = await service.transcribe(runtime, voice, pcm, credential)
        stt_ms = int((time.perf_counter() - started) * 1000)
        if not text:
            raise NothingHeard()
    except telegram.TelegramError as exc:
        if exc.retryable:
            raise VoiceRetryLater(f"telegram_{exc.status or 'unreachable'}") from exc
        return await _fail(runtime, tenant_id, event_id, "voice_download_refused")
    except SpeechUnavailable as exc:
        service.failed(exc.code)
        raise VoiceRetryLater(exc.code) from exc
    except VoiceError as exc:
        service.failed(exc.code)
        VOICE_TURNS.labels("telegram", "failed").inc()
        return await _fail(runtime, tenant_id, event_id, exc.code)

    async with tenant_session(runtime.db, tenant_id) as session:
        ev = (
            await session.execute(
                select(InboundEvent)
                .where(InboundEvent.tenant_id == tenant_id, InboundEvent.id == event_id)
                .with_for_update()
            )
        ).scalar_one()
        if ev.text:  # another run got here first
            return "ready"
        if ev.conversation_id is None:
            ev.conversation_id = await chat.contact_conversation(
                session, tenant_id, channel_id, bot_id, contact
            )
        ledger_id = new_id()
        repo.add_turn(
            session,
            tenant_id,
            id=ledger_id,
            conversation_id=ev.conversation_id,
            channel="telegram",
            stt_provider=voice.stt_provider,
            stt_model=voice.stt_model,
            status="succeeded",
            input_seconds=round(pcm.seconds, 3),
            stt_ms=stt_ms,
            cost_usd=service.cost_usd(runtime, voice, pcm.seconds, 0.0),
            audio=data if keep else None,
            audio_format="audio/ogg" if keep else None,
            finished_at=datetime.now(UTC),
        )
        ev.text = text[:4000]
        ev.payload = {**dict(ev.payload or {}), LEDGER_KEY: str(ledger_id)}
    VOICE_TURNS.labels("telegram", "succeeded").inc()
    return "ready"


async def _fail(runtime: Runtime, tenant_id: TenantId, event_id: uuid.UUID, code: str) -> str:
    async with tenant_session(runtime.db, tenant_id) as session:
        await session.execute(
            update(InboundEvent)
            .where(InboundEvent.tenant_id == tenant_id, InboundEvent.id == event_id)
            .values(status="failed", error=f"voice:{code}"[:200], processed_at=datetime.now(UTC))
        )
    log.info("voice.telegram_failed", tenant_id=str(tenant_id), event_id=str(event_id), code=code)
    return code


async def send_voice_reply(
    runtime: Runtime,
    tenant_id: TenantId,
    bot_id: uuid.UUID,
    payload: dict[str, Any],
    base: str,
    token: str,
    chat_id: int,
    reply: dict[str, Any],
) -> None:
    """The reply as a voice note, after its text was sent, when the bot turns that on and the
    visitor spoke. A synthesis failure leaves the text reply standing (logged, counted)."""
    if telegram.voice_file_id(payload) is None:
        return
    voice, _ = await _voice_settings(runtime, tenant_id, bot_id)
    if not voice.telegram_voice_reply:
        return
    try:
        credential = await service.credential_for(runtime, tenant_id, voice)
        pieces = [p async for p in service.speak(runtime, voice, str(reply["content"]), credential)]
    except VoiceError as exc:
        service.failed(exc.code)
        log.warning("voice.telegram_reply_unspoken", tenant_id=str(tenant_id), code=exc.code)
        return
    if not pieces:
        return
    pcm = audio.Pcm(
        b"".join(audio.resample(p, pieces[0].rate).data for p in pieces), pieces[0].rate
    )
    ogg = await asyncio.to_thread(audio.ogg_opus, pcm)
    await telegram.send_voice(runtime, base, token, chat_id, ogg, None)
    ledger = payload.get(LEDGER_KEY)
    if isinstance(ledger, str):
        async with tenant_session(runtime.db, tenant_id) as session:
            await session.execute(
                update(VoiceTurn)
                .where(VoiceTurn.tenant_id == tenant_id, VoiceTurn.id == uuid.UUID(ledger))
                .values(
                    tts_provider=voice.tts_provider,
                    tts_model=voice.tts_model,
                    output_seconds=round(pcm.seconds, 3),
                    reply_message_id=uuid.UUID(str(reply["id"])),
                    cost_usd=service.cost_usd(runtime, voice, 0.0, pcm.seconds)
                    + VoiceTurn.cost_usd,
                )
            )
