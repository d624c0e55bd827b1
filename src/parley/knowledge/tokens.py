"""A deterministic, dependency-free approximation of LLM (BPE) token counts.

tiktoken is not used: it downloads its encodings at run time. Instead text is cut by a
regular expression into letter runs, digit runs, single punctuation marks and single CJK
characters, and each piece is costed the way BPE vocabularies such as cl100k_base tend to
encode it: a letter run costs one token per started 8 characters (common words are one
token, long or rare words two or more), a digit run one token per started 3 digits
(cl100k groups digits by three), and every punctuation mark and CJK character one token.
For English prose this lands near the usual 1.3 tokens per word; it is a budget, not an
exact count, and it never depends on anything but the text.
"""

from __future__ import annotations

import re

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
TOKEN_RE = re.compile(rf"([{_CJK}])|(\d+)|([^\W\d_{_CJK}]+)|(_+|[^\w\s])")
LETTERS_PER_TOKEN = 8
DIGITS_PER_TOKEN = 3


def count_tokens(text: str) -> int:
    total = 0
    for match in TOKEN_RE.finditer(text):
        total += _cost(match)
    return total


def _cost(match: re.Match[str]) -> int:
    if match.lastindex == 2:
        return -(-len(match.group(2)) // DIGITS_PER_TOKEN)
    if match.lastindex == 3:
        return -(-len(match.group(3)) // LETTERS_PER_TOKEN)
    return 1


def split_by_tokens(text: str, limit: int) -> list[str]:
    """Cut text without spaces (a URL, a hash, a long compound) into pieces ≤ limit tokens."""
    pieces: list[str] = []
    start = 0
    used = 0
    for match in TOKEN_RE.finditer(text):
        cost = _cost(match)
        if cost > limit:  # one run longer than the whole budget: slice it by characters
            if match.start() > start:
                pieces.append(text[start : match.start()])
            step = limit * (DIGITS_PER_TOKEN if match.lastindex == 2 else LETTERS_PER_TOKEN)
            run = match.group(0)
            pieces.extend(run[i : i + step] for i in range(0, len(run), step))
            start, used = match.end(), 0
            continue
        if used + cost > limit:
            pieces.append(text[start : match.start()])
            start, used = match.start(), 0
        used += cost
    if start < len(text):
        pieces.append(text[start:])
    return [p for p in pieces if p]
