"""The built-in offline provider: answers by quoting the sentences of the retrieved passages
that best match the question, each cited `[n]`, or with the bot's fallback text when nothing
relevant was retrieved. No network, deterministic.

Passages reach it only when retrieval judged them relevant (see `knowledge.grounding`), so an
empty list means "nothing in the knowledge base answers this" and the bot says so.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from parley.llm.base import Passage, StreamEvent, TextDelta, TurnRequest, Usage

_WORDS = re.compile(r"\S+\s*")
_TERMS = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCES = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}")
_STOP = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    }
)
MAX_SENTENCES = 3
MAX_SENTENCE_CHARS = 400


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def _stems(text: str) -> set[str]:
    """Crude stems: lower-case words without stop words, cut to 6 letters."""
    return {w[:6] for w in (m.group(0).lower() for m in _TERMS.finditer(text)) if w not in _STOP}


def _candidates(passages: list[Passage]) -> list[tuple[int, int, str]]:
    """(passage number, position, sentence) for every sentence of every passage."""
    out = []
    for n, passage in enumerate(passages, start=1):
        for pos, raw in enumerate(_SENTENCES.split(passage.text)):
            sentence = " ".join(raw.split())
            if len(sentence) < 3:
                continue
            if len(sentence) > MAX_SENTENCE_CHARS:
                sentence = sentence[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + " …"
            out.append((n, pos, sentence))
    return out


def compose(request: TurnRequest) -> str:
    if not request.passages:
        return request.fallback_text
    question = request.messages[-1].content if request.messages else ""
    wanted = _stems(question)
    scored = []
    for n, pos, sentence in _candidates(request.passages):
        overlap = len(wanted & _stems(sentence))
        if overlap:
            # More matching terms first, then the better-ranked passage, then document order.
            scored.append((-overlap, n, pos, sentence))
    if not scored:  # relevant by retrieval, but no sentence shares a term: quote the best one
        first = _candidates(request.passages[:1])
        scored = [(0, n, pos, s) for n, pos, s in first[:2]]
    best = sorted(scored)[:MAX_SENTENCES]
    best.sort(key=lambda item: (item[1], item[2]))  # read in passage and document order
    lines = [f"{sentence} [{n}]" for _, n, _, sentence in best]
    return "\n\n".join(lines)


class ExtractiveProvider:
    name = "extractive"

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        answer = compose(request)
        for match in _WORDS.finditer(answer):
            yield TextDelta(match.group(0))
        prompt = request.system + "".join(m.content for m in request.messages)
        yield Usage(_approx_tokens(prompt), _approx_tokens(answer))
