"""A deterministic, dependency-free approximation of LLM (BPE) token counts.

tiktoken is not used: it downloads its encodings at run time. Instead a regular expression
cuts text into pieces that each count as one token, the way BPE vocabularies such as
cl100k_base tend to encode text: up to 8 letters (common words are one token, long or rare
words two or more), up to 3 digits (cl100k groups digits by three), one punctuation mark,
one CJK character. For English prose this lands near the usual 1.3 tokens per word; it is a
budget, not an exact count, and depends on nothing but the text. No piece is longer than 8
characters, so a text has at least (non-space characters / 8) tokens.
"""

from __future__ import annotations

import bisect
import re

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
LETTERS_PER_TOKEN = 8
DIGITS_PER_TOKEN = 3
TOKEN_RE = re.compile(
    rf"[{_CJK}]|\d{{1,{DIGITS_PER_TOKEN}}}|[^\W\d_{_CJK}]{{1,{LETTERS_PER_TOKEN}}}|_{{1,8}}|[^\w\s]"
)


def count_tokens(text: str) -> int:
    return TOKEN_RE.subn("", text)[1]  # counts matches without building a string per token


def split_by_tokens(text: str, limit: int) -> list[tuple[str, bool]]:
    """Cut text into pieces of at most `limit` tokens, at a space where the window has one.

    Returns (piece, starts_a_word) pairs: False when the cut fell inside a word (a URL, a
    hash), so joining pieces back needs no space there. One regex pass; linear time.
    """
    starts = [m.start() for m in TOKEN_RE.finditer(text)]
    pieces: list[tuple[str, bool]] = []
    first, pos, word_start = 0, 0, True
    while len(starts) - first > limit:
        cut = starts[first + limit]
        space = text.rfind(" ", pos, cut)
        if space > pos:
            end, nxt, next_word_start = space + 1, bisect.bisect_left(starts, space + 1), True
        else:
            end, nxt, next_word_start = cut, first + limit, text[cut - 1].isspace()
        pieces.append((text[pos:end].strip(), word_start))
        first, pos, word_start = nxt, end, next_word_start
    pieces.append((text[pos:].strip(), word_start))
    return [(p, w) for p, w in pieces if p]
