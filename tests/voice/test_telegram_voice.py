"""Telegram voice messages through the fake Bot API (its real wire shapes: getFile, the file
download URL, sendVoice as multipart): transcribed, answered in text, and with a voice note when
the bot turns that on; a damaged note fails the event with a reason and stores no message."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import av
import httpx
import pytest

from tests.channels.helpers import event_counts, make_channel, wait_for
from tests.conftest import DatabaseUnderTest, LiveServer, make_settings, register, serve_app
from tests.fakes.telegram_server import FakeTelegram
from tests.voice.helpers import spoken_ogg


@pytest.fixture(scope="module")
def voice_server(
    data_dir: Path, test_db: DatabaseUnderTest, telegram_api: FakeTelegram
) -> Iterator[LiveServer]:
    settings = make_settings(
        data_dir,
        parley_outbound_allow_private=True,
        parley_telegram_api_base_url=telegram_api.base_url,
        parley_worker_in_process=True,
        parley_job_heartbeat_timeout_seconds=5,
        parley_channel_send_timeout_seconds=2.0,
        parley_rate_limits="off",
    )
    with serve_app(settings, test_db.app_url) as server:
        yield server


@pytest.fixture
async def http(voice_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=voice_server.base_url, timeout=30) as c:
        yield c


def _voice_update(update_id: int, chat_id: int, file_id: str, size: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id % 1000,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ada"},
            "voice": {
                "file_id": file_id,
                "file_unique_id": "u" + file_id,
                "duration": 3,
                "mime_type": "audio/ogg",
                "file_size": size,
            },
        },
    }


async def _telegram_channel(
    http: httpx.AsyncClient, tag: str, *, voice_reply: bool
) -> tuple[Any, str]:
    owner = await register(http, tag)
    token = f"{uuid.uuid4().int % 10**9}:AA{uuid.uuid4().hex}"
    ch = await make_channel(
        http, owner, "telegram", {"bot_token": token}, fallback_text="We open at nine."
    )
    if voice_reply:
        patched = await http.patch(
            f"/v1/tenants/{owner.tenant_id}/bots/{ch.bot_id}",
            json={"voice": {"telegram_voice_reply": True}},
            headers=owner.headers,
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["config"]["voice"]["telegram_voice_reply"] is True
    return ch, token


async def test_voice_message_is_transcribed_answered_and_spoken(
    http: httpx.AsyncClient, telegram_api: FakeTelegram, admin_conn: asyncpg.Connection
) -> None:
    ch, token = await _telegram_channel(http, "tg-voice", voice_reply=True)
    note = spoken_ogg("what time do you close today")
    file_id = f"AwACAg{uuid.uuid4().hex}"
    telegram_api.add_file(file_id, note)
    update = _voice_update(880001, 5151, file_id, len(note))
    resp = await http.post(
        ch.inbound_path, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": ch.secret}
    )
    assert resp.status_code == 200, resp.text

    async def done() -> bool:
        return (await event_counts(admin_conn, ch.channel_id)).get("done") == 1

    await wait_for(done, what="the voice event processed")
    (get_file,) = telegram_api.calls_of("getFile", token)
    assert get_file.body == {"file_id": file_id}
    (text_reply,) = telegram_api.calls_of("sendMessage", token)
    assert text_reply.body == {"chat_id": 5151, "text": "We open at nine."}
    (voice_reply,) = telegram_api.calls_of("sendVoice", token)
    assert voice_reply.body["chat_id"] == 5151
    # The voice note is OGG/Opus that FFmpeg reads back as about a second of speech.
    sent = telegram_api.voices[-1]
    with av.open(io.BytesIO(sent)) as container:
        assert container.format.name == "ogg"
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        seconds = sum(f.samples for f in container.decode(audio=0)) / stream.rate
    assert seconds > 0.8

    user = await admin_conn.fetchrow(
        "SELECT m.content, m.spoken FROM messages m JOIN conversations c "
        "ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id "
        "WHERE c.channel_id = $1 AND m.role = 'user'",
        uuid.UUID(ch.channel_id),
    )
    assert user["spoken"] is True
    assert "close" in user["content"]
    ledger = await admin_conn.fetchrow(
        "SELECT channel, input_seconds, output_seconds, tts_provider, reply_message_id "
        "FROM voice_turns WHERE tenant_id = $1",
        uuid.UUID(ch.owner.tenant_id),
    )
    assert ledger["channel"] == "telegram"
    assert float(ledger["input_seconds"]) > 1.0
    assert float(ledger["output_seconds"]) == pytest.approx(seconds, abs=0.1)
    assert ledger["tts_provider"] == "espeak"
    assert ledger["reply_message_id"] is not None


async def test_voice_reply_off_answers_in_text_only(
    http: httpx.AsyncClient, telegram_api: FakeTelegram, admin_conn: asyncpg.Connection
) -> None:
    ch, token = await _telegram_channel(http, "tg-voice-text", voice_reply=False)
    note = spoken_ogg("thank you for your help")
    file_id = f"AwACAg{uuid.uuid4().hex}"
    telegram_api.add_file(file_id, note)
    resp = await http.post(
        ch.inbound_path,
        json=_voice_update(880002, 5252, file_id, len(note)),
        headers={"X-Telegram-Bot-Api-Secret-Token": ch.secret},
    )
    assert resp.status_code == 200

    async def done() -> bool:
        return (await event_counts(admin_conn, ch.channel_id)).get("done") == 1

    await wait_for(done, what="the voice event processed")
    assert len(telegram_api.calls_of("sendMessage", token)) == 1
    assert telegram_api.calls_of("sendVoice", token) == []


async def test_a_damaged_voice_note_fails_with_a_reason_and_stores_nothing(
    http: httpx.AsyncClient, telegram_api: FakeTelegram, admin_conn: asyncpg.Connection
) -> None:
    ch, token = await _telegram_channel(http, "tg-voice-bad", voice_reply=True)
    file_id = f"AwACAg{uuid.uuid4().hex}"
    telegram_api.add_file(file_id, b"OggS" + b"\x00" * 500)
    resp = await http.post(
        ch.inbound_path,
        json=_voice_update(880003, 5353, file_id, 504),
        headers={"X-Telegram-Bot-Api-Secret-Token": ch.secret},
    )
    assert resp.status_code == 200

    async def failed() -> bool:
        return (await event_counts(admin_conn, ch.channel_id)).get("failed") == 1

    await wait_for(failed, what="the voice event failed")
    error = await admin_conn.fetchval(
        "SELECT error FROM inbound_events WHERE channel_id = $1", uuid.UUID(ch.channel_id)
    )
    assert error == "voice:audio_corrupt"
    count = await admin_conn.fetchval(
        "SELECT count(*) FROM messages WHERE tenant_id = $1", uuid.UUID(ch.owner.tenant_id)
    )
    assert count == 0
    assert telegram_api.calls_of("sendMessage", token) == []
