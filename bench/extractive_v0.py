"""The extractive provider's sentence choice as it was before issue 14 (commit e95db2c), kept
here only as the baseline of the Q1 answer-quality benchmark: up to three sentences of any kind
(table rows, headings and code included) ranked by how many question terms they share. Its
terms are its own (words cut to six letters, a short stop list), not the current provider's:
until 3 December 2026 this file borrowed the current `stems`, so "before" was the old choice
with the new terms rather than what the product did before the issue."""

from __future__ import annotations

import re

from parley.llm.base import Passage, TurnRequest

_SENTENCES = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}")
_TERMS = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    """a an and are as at be by can could do does for from had has have how i if in into is it
    its me my of on or our so than that the their them then there these they this to us was we
    were what when where which who why will with would you your""".split()  # noqa: SIM905
)


def _stems(text: str) -> set[str]:
    """Crude stems: lower-case words without stop words, cut to 6 letters."""
    return {w[:6] for w in (m.group(0).lower() for m in _TERMS.finditer(text)) if w not in _STOP}


MAX_SENTENCES = 3
MAX_SENTENCE_CHARS = 400


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
