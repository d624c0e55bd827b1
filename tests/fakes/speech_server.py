"""A local OpenAI-compatible speech server speaking the real wire protocol of
`POST /v1/audio/transcriptions` (multipart: file, model, language, response_format → JSON
`{"text"}`) and `POST /v1/audio/speech` (JSON: model, input, voice, response_format, speed →
the audio bytes, streamed), as OpenAI and the Whisper/TTS servers that copy it answer.

Behaviour by model name:
- `fake-whisper`: answers `transcript` (settable) after checking the upload is a WAV file.
- `fake-stt-500`, `fake-tts-500`: answer 500 with an OpenAI-style error body.
- `fake-stt-hang`: never answers.
- `fake-tts`: streams 24 kHz mono 16-bit PCM, 0.1 s of tone per input word, in pieces.
Every request is recorded in `calls`.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.threaded import ThreadedServer

RATE = 24_000


def _error(status: int) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": "upstream trouble", "type": "server_error", "code": None}},
        status_code=status,
    )


class SpeechRoutes:
    """The two audio endpoints; `FakeOpenAI` serves them too, next to chat completions."""

    calls: list[dict[str, Any]]
    transcript = "what are your opening hours"

    def speech_routes(self) -> list[Route]:
        return [
            Route("/v1/audio/transcriptions", self.transcriptions, methods=["POST"]),
            Route("/v1/audio/speech", self.speech, methods=["POST"]),
        ]

    async def transcriptions(self, request: Request) -> Response:
        form = await request.form()
        upload: Any = form.get("file")
        data = await upload.read() if upload is not None else b""
        call = {
            "path": "transcriptions",
            "model": form.get("model"),
            "language": form.get("language"),
            "response_format": form.get("response_format"),
            "filename": getattr(upload, "filename", None),
            "bytes": len(data),
            "authorization": request.headers.get("authorization"),
        }
        self.calls.append(call)
        model = str(form.get("model"))
        if model == "fake-stt-500":
            return _error(500)
        if model == "fake-stt-hang":
            await asyncio.sleep(3600)
        if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
            return JSONResponse(
                {"error": {"message": "Invalid file format.", "type": "invalid_request_error"}},
                status_code=400,
            )
        return JSONResponse({"text": self.transcript})

    async def speech(self, request: Request) -> Response:
        body = await request.json()
        self.calls.append(
            {"path": "speech", **body, "authorization": request.headers.get("authorization")}
        )
        if body.get("model") == "fake-tts-500":
            return _error(500)
        words = max(1, len(str(body.get("input", "")).split()))
        samples = int(RATE * 0.1 * words)
        pcm = b"".join(
            struct.pack("<h", int(6000 * math.sin(2 * math.pi * 330 * i / RATE)))
            for i in range(samples)
        )

        async def pieces() -> Any:
            for start in range(0, len(pcm), 9600):
                yield pcm[start : start + 9600]
                await asyncio.sleep(0)

        return StreamingResponse(pieces(), media_type="audio/pcm")


class FakeSpeech(SpeechRoutes):
    """The audio endpoints alone, on their own port."""

    def __init__(self) -> None:
        self.calls = []
        self.app = Starlette(routes=self.speech_routes())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self._runner = ThreadedServer(self.app, self.port)
        self._runner.start()

    def stop(self) -> None:
        self._runner.stop()
