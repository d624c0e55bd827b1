"""Cuts a streamed reply into sentences, so speech starts on the first complete sentence
instead of at the end of the reply."""

from __future__ import annotations

import re

_END = re.compile(r"[.!?…。！？]+[\"')\]]*(?=\s)|\n+")
MAX_CHARS = 240  # a run-on "sentence" is cut at a comma or space past this length
_SOFT = re.compile(r"[,;:]\s|\s")


class SentenceSplitter:
    def __init__(self) -> None:
        self.pending = ""

    def feed(self, text: str) -> list[str]:
        """The sentences `text` completes (a sentence ends at punctuation followed by white
        space, so "3.5" or "e.g.x" do not end one)."""
        self.pending += text
        out: list[str] = []
        while True:
            match = _END.search(self.pending)
            if match is None:
                break
            sentence, self.pending = self.pending[: match.end()], self.pending[match.end() :]
            if sentence.strip():
                out.append(sentence.strip())
        while len(self.pending) > MAX_CHARS:
            cut = max((m.end() for m in _SOFT.finditer(self.pending, 0, MAX_CHARS)), default=0)
            cut = cut or MAX_CHARS
            piece, self.pending = self.pending[:cut], self.pending[cut:]
            if piece.strip():
                out.append(piece.strip())
        return out

    def flush(self) -> list[str]:
        rest, self.pending = self.pending.strip(), ""
        return [rest] if rest else []
