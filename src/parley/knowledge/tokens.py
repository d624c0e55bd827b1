"""A deterministic, dependency-free approximation of LLM (BPE) token counts.

tiktoken is not used: it downloads its encodings at run time. Instead a regular expression
cuts text into pieces that each count as one token, the way BPE vocabularies such as
cl100k_base tend to encode text: up to 8 letters (common words are one token, long or rare
words two or more), up to 3 digits (cl100k groups digits by three), one punctuation mark,
one CJK character. For English prose this lands near the usual 1.3 tokens per word; it is a
budget, not an exact count, and depends on nothing but the text. Counting is one `findall`.
"""

from __future__ import annotations

import itertools
import re

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
LETTERS_PER_TOKEN = 8
DIGITS_PER_TOKEN = 3
TOKEN_RE = re.compile(
    rf"[{_CJK}]|\d{{1,{DIGITS_PER_TOKEN}}}|[^\W\d_{_CJK}]{{1,{LETTERS_PER_TOKEN}}}|_+|[^\w\s]"
)


def count_tokens(text: str) -> int:
    return len(TOKEN_RE.findall(text))


def split_by_tokens(text: str, limit: int) -> list[str]:
    """Cut text without spaces (a URL, a hash, a long compound) into pieces ≤ limit tokens."""
    starts = [m.start() for m in TOKEN_RE.finditer(text)][::limit]
    if not starts:
        return [text] if text else []
    starts[0] = 0
    bounds = [*starts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if text[a:b]]
