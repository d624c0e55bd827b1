"""The built-in offline provider: answers by quoting the best knowledge passages, or with the
bot's fallback text when nothing relevant was retrieved. No network, deterministic."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from parley.llm.base import StreamEvent, TextDelta, TurnRequest, Usage

_WORDS = re.compile(r"\S+\s*")


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def compose(request: TurnRequest) -> str:
    if not request.passages:
        return request.fallback_text
    best = request.passages[:2]
    lines = ["Here is what I found:"]
    for i, passage in enumerate(best, start=1):
        snippet = " ".join(passage.text.split())
        if len(snippet) > 600:
            snippet = snippet[:600].rsplit(" ", 1)[0] + " …"
        lines.append(f"{snippet} [{i}]")
    return "\n\n".join(lines)


class ExtractiveProvider:
    name = "extractive"

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        answer = compose(request)
        for match in _WORDS.finditer(answer):
            yield TextDelta(match.group(0))
        prompt = request.system + "".join(m.content for m in request.messages)
        yield Usage(_approx_tokens(prompt), _approx_tokens(answer))
