"""A local OpenAI-compatible server speaking the real chat-completions wire protocol (JSON and
SSE `data:` chunks ending in `data: [DONE]`), for tests and benchmarks.

Behaviour is chosen by the requested model name:
- `fake-echo` (default): streams "You said: <last user message>" word by word, with usage.
- `fake-500` / `fake-429`: answers that status with an OpenAI-style error body.
- `fake-stall`: sends two chunks, then stalls (never finishes) until the client gives up.
- `fake-hang`: accepts the request and never sends a token.
- `fake-garbage`: streams a chunk that is not JSON.
- `fake-break`: sends two chunks, then drops the connection.
Every request body is recorded in `calls`.

`/v1/audio/transcriptions` and `/v1/audio/speech` answer as OpenAI's audio API does
(`tests/fakes/speech_server.py`).

`/v1/embeddings` answers in OpenAI's wire format with deterministic vectors: a hashed bag of
"concepts" (each word mapped through a small synonym table, so "reimbursement" and "refund"
land on the same dimension) — a stand-in for a semantic model. `fake-embed-500` answers 500.

`/v1/rerank` answers as Cohere's and Jina's rerank APIs do (`{"results": [{"index",
"relevance_score"}]}`, best first, `top_n` of them): a document containing the whole query as a
phrase scores 0.9 plus a little per query word, one containing only some of its words
0.5 × the share it has. `fake-rerank-500` answers 500; `fake-rerank-garbage` answers
an index that is not one of the documents; `fake-rerank-partial` scores only the best one.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import random
import re
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.speech_server import SpeechRoutes
from tests.fakes.threaded import ThreadedServer

PACED_DELAY = 0.025


class FakeOpenAI(SpeechRoutes):
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.delay_per_chunk = 0.0
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/rerank", self.rerank, methods=["POST"]),
                Route("/v1/messages", self.anthropic_messages, methods=["POST"]),
                Route("/{version}/models/{target:path}", self.gemini_generate, methods=["POST"]),
                *self.speech_routes(),  # /v1/audio/transcriptions and /v1/audio/speech
            ]
        )
        self.port = _free_port()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self._runner = ThreadedServer(self.app, self.port)
        self._runner.start()

    def stop(self) -> None:
        if getattr(self, "_runner", None) is not None:
            self._runner.stop()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
        delay = self.delay_per_chunk
        if model == "fake-paced":  # a real model's pace: 40 tokens, one every 25 ms
            words = (words * 40)[:40]
            delay = PACED_DELAY
        if not body.get("stream"):
            return JSONResponse(_completion(model, " ".join(words)))

        async def chunks() -> Any:
            if model == "fake-hang":  # accepts the request, never sends a token
                await asyncio.sleep(3600)
            if model == "fake-garbage":  # a stream the SDK cannot parse
                yield "data: {not json\n\n"
                return
            for i, word in enumerate(words):
                if model in ("fake-stall", "fake-break") and i == 2:
                    if model == "fake-break":
                        raise ConnectionResetError("dropped")
                    await asyncio.sleep(3600)
                text = word if i == 0 else " " + word
                yield _chunk(model, {"content": text})
                if delay:
                    await asyncio.sleep(delay)
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

    async def embeddings(self, request: Request) -> Response:
        """OpenAI `POST /v1/embeddings`: `{"object":"list","data":[{"object":"embedding",
        "index","embedding"}],"model","usage"}`; `input` may be a string or a list."""
        body = await request.json()
        body["_authorization"] = request.headers.get("authorization")
        self.calls.append(body)
        model = body.get("model", "fake-embed")
        if model == "fake-embed-500":
            return JSONResponse(
                {"error": {"message": "upstream trouble", "type": "server_error", "code": None}},
                status_code=500,
            )
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = int(body.get("dimensions") or EMBED_DIMS)
        data = [
            {"object": "embedding", "index": i, "embedding": concept_vector(str(t), dims)}
            for i, t in enumerate(inputs)
        ]
        tokens = sum(len(str(t).split()) for t in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def rerank(self, request: Request) -> Response:
        body = await request.json()
        body["_authorization"] = request.headers.get("authorization")
        self.calls.append(body)
        model = body.get("model")
        if model == "fake-rerank-500":
            return JSONResponse({"message": "reranker overloaded"}, status_code=500)
        query, documents = str(body["query"]).lower(), [str(d) for d in body["documents"]]
        if model == "fake-rerank-garbage":
            return JSONResponse({"results": [{"index": len(documents), "relevance_score": 1.0}]})
        words = set(re.findall(r"[a-z0-9]+", query))

        def score(doc: str) -> float:
            text = doc.lower()
            share = len(words & set(re.findall(r"[a-z0-9]+", text))) / max(len(words), 1)
            return 0.9 + 0.1 * share if query in text else 0.5 * share

        scored = sorted(
            ({"index": i, "relevance_score": score(d)} for i, d in enumerate(documents)),
            key=lambda r: (-float(r["relevance_score"]), int(r["index"])),
        )
        top = 1 if model == "fake-rerank-partial" else int(body.get("top_n") or len(documents))
        return JSONResponse({"id": "rerank-1", "results": scored[:top], "meta": {}})

    async def anthropic_messages(self, request: Request) -> Response:
        """Anthropic Messages API: `event:`-typed SSE (message_start … message_stop)."""
        body = await request.json()
        body["_authorization"] = request.headers.get("x-api-key") or request.headers.get(
            "authorization"
        )
        self.calls.append(body)
        model = body.get("model", "fake-echo")
        if (status := _failure(model)) is not None:
            return JSONResponse(
                {"type": "error", "error": {"type": "api_error", "message": "upstream trouble"}},
                status_code=status,
            )
        user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        words = f"You said: {user}".split(" ")

        async def events() -> Any:
            yield _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_fake",
                        "type": "message",
                        "role": "assistant",
                        "content": [],
                        "model": model,
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 13, "output_tokens": 1},
                    },
                },
            )
            yield _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for i, word in enumerate(words):
                yield _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word if i == 0 else " " + word},
                    },
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(words)},
                },
            )
            yield _sse("message_stop", {"type": "message_stop"})

        return StreamingResponse(events(), media_type="text/event-stream")

    async def gemini_generate(self, request: Request) -> Response:
        """Gemini streamGenerateContent (`alt=sse`): `data:` GenerateContentResponse chunks."""
        body = await request.json()
        target = request.path_params["target"]
        model = target.split(":")[0]
        body["model"] = model
        body["_authorization"] = request.headers.get("x-goog-api-key")
        self.calls.append(body)
        if (status := _failure(model)) is not None:
            return JSONResponse(
                {"error": {"code": status, "message": "upstream trouble", "status": "UNAVAILABLE"}},
                status_code=status,
            )
        user = next(
            (c["parts"][0]["text"] for c in reversed(body["contents"]) if c.get("role") == "user"),
            "",
        )
        words = f"You said: {user}".split(" ")

        async def chunks() -> Any:
            for i, word in enumerate(words):
                last = i == len(words) - 1
                data: dict[str, Any] = {
                    "candidates": [
                        {
                            "content": {
                                "role": "model",
                                "parts": [{"text": word if i == 0 else " " + word}],
                            },
                            "index": 0,
                        }
                    ],
                    "modelVersion": model,
                }
                if last:
                    data["candidates"][0]["finishReason"] = "STOP"
                    data["usageMetadata"] = {
                        "promptTokenCount": 17,
                        "candidatesTokenCount": len(words),
                        "totalTokenCount": 17 + len(words),
                    }
                yield "data: " + json.dumps(data) + "\r\n\r\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")


EMBED_DIMS = 384
# Words that mean the same thing to the fake "model" (not to BM25: no shared stems).
SYNONYMS = {
    "reimbursement": "refund",
    "reimbursed": "refund",
    "repayment": "refund",
    "money": "refund",
    "automobile": "car",
    "vehicle": "car",
    "motorcar": "car",
    "physician": "doctor",
    "medic": "doctor",
    "canine": "dog",
    "puppy": "dog",
    "feline": "cat",
    "kitten": "cat",
}


def concept_vector(text: str, dims: int = EMBED_DIMS) -> list[float]:
    """Sum of one pseudo-random dense direction per concept (seeded by the concept's hash),
    unnormalised (the client normalises): texts sharing concepts point the same way, unrelated
    ones are nearly orthogonal, and the vectors are dense like a real model's (sparse or
    duplicate vectors make an HNSW graph unnavigable, which no real model produces)."""
    vector = [0.0] * dims
    for word in re.findall(r"[a-z]+", text.lower()):
        word = word.removesuffix("s") if len(word) > 3 else word
        concept = SYNONYMS.get(word, word)
        for i, x in enumerate(_direction(concept, dims)):
            vector[i] += x
    if not any(vector):
        vector[0] = 1.0
    return vector


@functools.lru_cache(maxsize=4096)
def _direction(concept: str, dims: int) -> tuple[float, ...]:
    seed = int.from_bytes(hashlib.sha256(concept.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    return tuple(rng.gauss(0.0, 1.0) for _ in range(dims))


def _failure(model: str) -> int | None:
    return int(model[-3:]) if model in ("fake-500", "fake-429") else None


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


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
