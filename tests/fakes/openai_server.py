"""A local OpenAI-compatible server speaking the real chat-completions wire protocol (JSON and
SSE `data:` chunks ending in `data: [DONE]`), for tests and benchmarks.

Behaviour is chosen by the requested model name:
- `fake-echo` (default): streams "You said: <last user message>" word by word, with usage.
- `fake-500` / `fake-429`: answers that status with an OpenAI-style error body.
- `fake-stall`: sends two chunks, then stalls (never finishes) until the client gives up.
- `fake-break`: sends two chunks, then drops the connection.
Every request body is recorded in `calls`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class FakeOpenAI:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.delay_per_chunk = 0.0
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.port = _free_port()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=5)

    def calls_for(self, needle: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if needle in json.dumps(c)]

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        body["_authorization"] = request.headers.get("authorization")
        self.calls.append(body)
        model = body.get("model", "fake-echo")
        if model in ("fake-500", "fake-429"):
            status = int(model[-3:])
            return JSONResponse(
                {"error": {"message": "upstream trouble", "type": "server_error", "code": None}},
                status_code=status,
            )
        user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        words = f"You said: {user}".split(" ")
        if not body.get("stream"):
            return JSONResponse(_completion(model, " ".join(words)))

        async def chunks() -> Any:
            for i, word in enumerate(words):
                if model in ("fake-stall", "fake-break") and i == 2:
                    if model == "fake-break":
                        raise ConnectionResetError("dropped")
                    await asyncio.sleep(3600)
                text = word if i == 0 else " " + word
                yield _chunk(model, {"content": text})
                if self.delay_per_chunk:
                    await asyncio.sleep(self.delay_per_chunk)
            yield _chunk(model, {}, finish="stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    "prompt_tokens": 11,
                    "completion_tokens": len(words),
                    "total_tokens": 11 + len(words),
                }
                yield (
                    "data: "
                    + json.dumps(
                        {
                            "id": "chatcmpl-fake",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                    + "\n\n"
                )
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    payload = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return "data: " + json.dumps(payload) + "\n\n"


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":  # `python -m tests.fakes.openai_server PORT` (benchmarks)
    import sys

    fake = FakeOpenAI()
    uvicorn.run(fake.app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error")
