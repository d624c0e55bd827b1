"""The voice turn over real HTTP: a visitor who disconnects mid-upload leaves nothing behind,
and one who interrupts the spoken reply (barge-in: closing the stream) stops the synthesis,
while the text reply is still stored and the ledger says `interrupted`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from tests.channels.helpers import wait_for
from tests.conftest import LiveServer, create_widget, register, widget_session
from tests.voice.helpers import leftover_temp_files, spoken_wav

LONG_ANSWER = " ".join(f"This is sentence number {n} of a long answer." for n in range(1, 31))


async def test_disconnect_mid_upload_stores_nothing_and_leaves_no_file(
    live_server: LiveServer, app: Any, admin_conn: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as http:
        owner = await register(http, "voice-cut")
        setup = await create_widget(http, owner, voice=True)
        ws = await widget_session(http, setup.widget_key)
    body = spoken_wav("please call me back tomorrow morning")
    _reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    head = (
        "POST /v1/widget/voice HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{live_server.port}\r\n"
        f"Authorization: Bearer {ws.token}\r\nOrigin: {ws.origin}\r\n"
        f"Content-Type: audio/wav\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body[: len(body) // 3])
    await writer.drain()
    directory = str(app.state.runtime.settings.parley_voice_tmp_dir)

    async def spooling() -> bool:
        return leftover_temp_files(directory) != []

    await wait_for(spooling, timeout=10, what="the upload spooling to a temporary file")
    writer.close()
    await writer.wait_closed()

    async def clean() -> bool:
        return leftover_temp_files(directory) == []

    await wait_for(clean, timeout=10, what="the spooled upload removed")
    await asyncio.sleep(0.3)
    count = await admin_conn.fetchval(
        "SELECT count(*) FROM messages WHERE tenant_id = $1", uuid.UUID(owner.tenant_id)
    )
    assert count == 0
    turns = await admin_conn.fetchval(
        "SELECT count(*) FROM voice_turns WHERE tenant_id = $1", uuid.UUID(owner.tenant_id)
    )
    assert turns == 0


async def test_barge_in_drops_the_rest_of_the_speech(
    live_server: LiveServer, admin_conn: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        owner = await register(http, "voice-barge")
        setup = await create_widget(http, owner, voice=True, bot={"fallback_text": LONG_ANSWER})
        ws = await widget_session(http, setup.widget_key)
        audio_events = 0
        async with http.stream(
            "POST",
            "/v1/widget/voice",
            content=spoken_wav("can you help me track my parcel"),
            headers={**ws.headers, "Content-Type": "audio/wav"},
        ) as resp:
            assert resp.status_code == 201
            async for line in resp.aiter_lines():
                if line == "event: audio":
                    audio_events += 1
                    if audio_events == 2:
                        break  # the visitor speaks again: the client closes the stream
    tenant = uuid.UUID(owner.tenant_id)

    async def recorded() -> bool:
        status = await admin_conn.fetchval(
            "SELECT status FROM voice_turns WHERE tenant_id = $1", tenant
        )
        return status is not None

    await wait_for(recorded, timeout=20, what="the voice ledger row")
    row = await admin_conn.fetchrow(
        "SELECT status, output_seconds, reply_message_id FROM voice_turns WHERE tenant_id = $1",
        tenant,
    )
    assert row["status"] == "interrupted"
    # Far less speech was made than the whole answer needs (30 sentences, about 2 s each).
    assert 0 < float(row["output_seconds"]) < 30

    async def reply_stored() -> bool:
        n = await admin_conn.fetchval(
            "SELECT count(*) FROM messages WHERE tenant_id = $1 AND role = 'assistant'", tenant
        )
        return bool(n == 1)

    await wait_for(reply_stored, timeout=20, what="the text reply stored")
    spoken = await admin_conn.fetchval(
        "SELECT spoken FROM messages WHERE tenant_id = $1 AND role = 'user'", tenant
    )
    assert spoken is True
