"""`POST /v1/widget/voice` with the offline defaults: the transcript is stored as a spoken
message, the usual turn streams, speech follows sentence by sentence, the ledger records it;
bad input gets a problem, stores nothing and leaves no temporary file."""

from __future__ import annotations

import base64
import io
import uuid
import wave
from typing import Any

import httpx
import pytest

from parley.kit.metrics import REGISTRY
from tests.conftest import (
    WidgetSession,
    assert_problem,
    create_widget,
    parse_sse,
    register,
    widget_session,
)
from tests.voice.helpers import (
    leftover_temp_files,
    silence_wav,
    spoken_ogg,
    spoken_wav,
    spoken_webm,
)

SENTENCE = "what is the price of the premium plan"


async def _voice_widget(client: httpx.AsyncClient, **bot: Any) -> tuple[Any, WidgetSession]:
    owner = await register(client, "voice")
    setup = await create_widget(client, owner, voice=True, bot=bot or None)
    return setup, await widget_session(client, setup.widget_key)


async def _post(
    client: httpx.AsyncClient,
    ws: WidgetSession,
    body: bytes,
    content_type: str = "audio/wav",
    **headers: str,
) -> httpx.Response:
    return await client.post(
        "/v1/widget/voice",
        content=body,
        headers={**ws.headers, "Content-Type": content_type, **headers},
    )


async def _messages(client: httpx.AsyncClient, ws: WidgetSession) -> list[dict[str, Any]]:
    resp = await client.get(
        f"/v1/widget/conversations/{ws.conversation_id}/messages", headers=ws.headers
    )
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


def _tmp_dir(app: Any) -> str:
    return str(app.state.runtime.settings.parley_voice_tmp_dir)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_voice_turn_streams_transcript_reply_and_speech(
    client: httpx.AsyncClient, app: Any, admin_conn: Any
) -> None:
    setup, ws = await _voice_widget(client)
    turns_before = _metric("parley_voice_turns_total", channel="widget", outcome="succeeded")
    resp = await _post(client, ws, spoken_wav(SENTENCE))
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(resp.text)
    names = [name for name, _, _ in events]
    assert names[0] == "transcript"
    assert names[-2:] == ["reply.completed", "voice.completed"]
    transcript = events[0][1]
    assert transcript["text"]
    assert transcript["message"]["content"] == transcript["text"]
    assert transcript["message"]["spoken"] is True

    # Speech starts on the first complete sentence, before the reply has finished streaming.
    first_audio = names.index("audio")
    last_delta = len(names) - 1 - names[::-1].index("reply.delta")
    assert first_audio < last_delta, names
    audio_events = [data for name, data, _ in events if name == "audio"]
    assert [a["seq"] for a in audio_events] == list(range(len(audio_events)))
    assert len(audio_events) >= 2  # the fallback answer has two sentences
    with wave.open(io.BytesIO(base64.b64decode(audio_events[0]["data"]))) as w:
        assert w.getnchannels() == 1
        assert w.getnframes() > w.getframerate() // 2  # over half a second of speech
    assert audio_events[0]["text"].endswith(".")

    reply = events[-2][1]
    deltas = "".join(d["text"] for n, d, _ in events if n == "reply.delta")
    assert reply["content"] == deltas.strip()
    done = events[-1][1]
    assert done["input_seconds"] > 1.0
    assert done["output_seconds"] == pytest.approx(sum(a["seconds"] for a in audio_events), 0.01)

    history = await _messages(client, ws)
    assert [(m["role"], m["spoken"]) for m in history] == [("user", True), ("assistant", False)]
    row = await admin_conn.fetchrow(
        "SELECT * FROM voice_turns WHERE tenant_id = $1 AND conversation_id = $2",
        uuid.UUID(setup.owner.tenant_id),
        uuid.UUID(ws.conversation_id),
    )
    assert row["status"] == "succeeded"
    assert str(row["message_id"]) == transcript["message"]["id"]
    assert str(row["reply_message_id"]) == reply["id"]
    assert float(row["input_seconds"]) == pytest.approx(done["input_seconds"], abs=0.01)
    assert float(row["output_seconds"]) == pytest.approx(done["output_seconds"], abs=0.01)
    assert row["audio"] is None  # retention is off by default
    assert row["stt_provider"] == "pocketsphinx"
    assert row["tts_provider"] == "espeak"
    assert (
        _metric("parley_voice_turns_total", channel="widget", outcome="succeeded")
        == turns_before + 1
    )
    assert leftover_temp_files(_tmp_dir(app)) == []

    usage = await client.get(
        f"/v1/tenants/{setup.owner.tenant_id}/voice", headers=setup.owner.headers
    )
    assert usage.status_code == 200, usage.text
    assert usage.json()["voice_seconds_this_month"] == pytest.approx(
        done["input_seconds"] + done["output_seconds"], abs=0.01
    )


@pytest.mark.parametrize(("make", "mime"), [(spoken_webm, "audio/webm"), (spoken_ogg, "audio/ogg")])
async def test_browser_and_telegram_containers_are_heard(
    client: httpx.AsyncClient, make: Any, mime: str
) -> None:
    _, ws = await _voice_widget(client)
    resp = await _post(client, ws, make("i would like to upgrade my plan"), mime)
    assert resp.status_code == 201, resp.text
    transcript = parse_sse(resp.text)[0][1]["text"]
    assert "i would like" in transcript  # what matters: the container decoded to speech


async def test_idempotent_retry_replays_the_turn(client: httpx.AsyncClient) -> None:
    _, ws = await _voice_widget(client)
    body = spoken_wav(SENTENCE)
    first = await _post(client, ws, body, **{"Idempotency-Key": "voice-1"})
    second = await _post(client, ws, body, **{"Idempotency-Key": "voice-1"})
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text  # once a 422 in a full run: see its body
    one, two = parse_sse(first.text), parse_sse(second.text)
    reply_one = next(d for n, d, _ in one if n == "reply.completed")
    reply_two = next(d for n, d, _ in two if n == "reply.completed")
    assert reply_one["id"] == reply_two["id"]
    assert any(n == "audio" for n, _, _ in two)  # the replayed reply is spoken again
    assert len(await _messages(client, ws)) == 2  # one question, one answer


async def test_retention_keeps_the_recording(client: httpx.AsyncClient, admin_conn: Any) -> None:
    setup, ws = await _voice_widget(client)
    owner = setup.owner
    on = await client.put(
        f"/v1/tenants/{owner.tenant_id}/voice", json={"retain_audio": True}, headers=owner.headers
    )
    assert on.status_code == 200
    assert on.json()["retain_audio"] is True
    body = spoken_wav(SENTENCE)
    resp = await _post(client, ws, body)
    assert resp.status_code == 201
    row = await admin_conn.fetchrow(
        "SELECT audio, audio_format FROM voice_turns WHERE tenant_id = $1",
        uuid.UUID(owner.tenant_id),
    )
    assert bytes(row["audio"]) == body
    assert row["audio_format"] == "audio/wav"


async def test_voice_off_for_the_channel(client: httpx.AsyncClient) -> None:
    owner = await register(client, "novoice")
    setup = await create_widget(client, owner)
    ws = await widget_session(client, setup.widget_key)
    assert ws.body["bot"]["voice"] is False
    assert_problem(await _post(client, ws, spoken_wav(SENTENCE)), 403, "voice_disabled")
    on = await client.patch(
        f"/v1/tenants/{owner.tenant_id}/channels/{setup.channel_id}",
        json={"voice": True},
        headers=owner.headers,
    )
    assert on.status_code == 200, on.text
    ws = await widget_session(client, setup.widget_key)
    assert ws.body["bot"]["voice"] is True


def _corrupt() -> bytes:
    webm = spoken_webm(SENTENCE)
    return webm[:200] + bytes(range(256)) * 20 + webm[-100:]


@pytest.mark.parametrize(
    ("body", "mime", "status", "code"),
    [
        (b"", "audio/wav", 422, "audio_empty"),
        (silence_wav(0.02), "audio/wav", 422, "audio_empty"),
        (b"%PDF-1.7\n" + b"x" * 2000, "audio/wav", 415, "audio_unsupported"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\xff" * 500, "audio/wav", 422, "audio_corrupt"),
        # A playlist would have FFmpeg open other files and URLs: never probed, refused.
        (
            b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
            "audio/wav",
            415,
            "audio_unsupported",
        ),
        (_corrupt(), "audio/webm", 422, "audio_corrupt"),
        (silence_wav(31), "audio/wav", 413, "audio_too_long"),
        (silence_wav(2), "audio/wav", 422, "speech_not_recognised"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png", 415, "audio_unsupported"),
    ],
    ids=[
        "zero-bytes",
        "no-samples",
        "not-audio",
        "broken-wav",
        "playlist",
        "corrupt-stream",
        "too-long",
        "silence",
        "png",
    ],
)
async def test_bad_input_gets_a_problem_and_stores_nothing(
    client: httpx.AsyncClient, app: Any, body: bytes, mime: str, status: int, code: str
) -> None:
    _, ws = await _voice_widget(client)
    failures = _metric("parley_voice_failures_total", kind=code)
    assert_problem(await _post(client, ws, body, mime), status, code)
    assert await _messages(client, ws) == []
    assert leftover_temp_files(_tmp_dir(app)) == []
    assert _metric("parley_voice_failures_total", kind=code) == failures + 1


async def test_wrong_container_is_refused(client: httpx.AsyncClient, app: Any) -> None:
    """A real audio file in a container that is not on the list (FLAC here)."""
    import av

    from tests.voice.helpers import spoken

    pcm = spoken(SENTENCE)
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=16_000)
        stream.layout = "mono"
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm.data) // 2)
        frame.planes[0].update(pcm.data)
        frame.sample_rate = 16_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    _, ws = await _voice_widget(client)
    assert_problem(await _post(client, ws, buf.getvalue(), "audio/flac"), 415, "audio_unsupported")
    assert await _messages(client, ws) == []
    assert leftover_temp_files(_tmp_dir(app)) == []


async def test_upload_over_the_size_limit(client: httpx.AsyncClient, app: Any) -> None:
    _, ws = await _voice_widget(client)
    limit = app.state.runtime.settings.parley_voice_max_upload_bytes

    async def body() -> Any:  # streamed, without a Content-Length
        for _ in range(limit // 65_536 + 2):
            yield b"\x00" * 65_536

    resp = await client.post(
        "/v1/widget/voice",
        content=body(),
        headers={**ws.headers, "Content-Type": "audio/wav"},
    )
    assert_problem(resp, 413, "audio_too_large")
    assert await _messages(client, ws) == []
    assert leftover_temp_files(_tmp_dir(app)) == []


async def test_openai_compatible_speech_end_to_end(
    client: httpx.AsyncClient, fake_openai: Any, admin_conn: Any
) -> None:
    """The bot's voice settings point at an OpenAI-compatible speech server (here the
    platform default, the local fake): its transcript is the message, its speech the audio."""
    setup, ws = await _voice_widget(client)
    voice = {
        "stt_provider": "openai",
        "stt_model": "fake-whisper",
        "tts_provider": "openai",
        "tts_model": "fake-tts",
        "voice": "alloy",
    }
    patched = await client.patch(
        f"/v1/tenants/{setup.owner.tenant_id}/bots/{setup.bot_id}",
        json={"voice": voice},
        headers=setup.owner.headers,
    )
    assert patched.status_code == 200, patched.text
    resp = await _post(client, ws, spoken_webm(SENTENCE), "audio/webm")
    assert resp.status_code == 201, resp.text
    events = parse_sse(resp.text)
    assert events[0][1]["text"] == fake_openai.transcript
    audio = [d for n, d, _ in events if n == "audio"]
    assert audio
    with wave.open(io.BytesIO(base64.b64decode(audio[0]["data"]))) as w:
        assert w.getframerate() == 24_000  # the server's PCM, as it streamed
    calls = [c for c in fake_openai.calls if c.get("path") == "transcriptions"]
    assert calls[-1]["model"] == "fake-whisper"
    assert calls[-1]["authorization"] == "Bearer sk-test"  # the platform key
    row = await admin_conn.fetchrow(
        "SELECT stt_provider, stt_model, tts_provider FROM voice_turns WHERE tenant_id = $1",
        uuid.UUID(setup.owner.tenant_id),
    )
    assert tuple(row) == ("openai", "fake-whisper", "openai")


async def test_a_person_holds_the_conversation_the_bot_stays_silent(
    client: httpx.AsyncClient, admin_conn: Any
) -> None:
    """Voice goes through the same send path as text (SPEC C12, issue 17): once a person has
    taken the conversation, a spoken message is stored for them and no turn runs."""
    setup, ws = await _voice_widget(client)
    owner = setup.owner
    taken = await client.post(
        f"/v1/tenants/{owner.tenant_id}/conversations/{ws.conversation_id}/assign",
        headers=owner.headers,
    )
    assert taken.status_code == 200, taken.text
    resp = await _post(client, ws, spoken_wav(SENTENCE))
    assert resp.status_code == 201, resp.text
    events = parse_sse(resp.text)
    names = [name for name, _, _ in events]
    assert names == ["transcript", "conversation.status", "voice.completed"]
    assert events[1][1]["handoff_status"] == "assigned"
    history = await _messages(client, ws)
    assert [(m["role"], m["spoken"]) for m in history] == [("user", True)]
    turns = await admin_conn.fetchval(
        "SELECT count(*) FROM llm_turns WHERE tenant_id = $1 AND conversation_id = $2",
        uuid.UUID(owner.tenant_id),
        uuid.UUID(ws.conversation_id),
    )
    assert turns == 0
