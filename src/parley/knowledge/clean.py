"""Text cleaning shared by every format: storable in PostgreSQL, whitespace normalised.

PostgreSQL `text` rejects NUL and UTF-8 cannot encode lone surrogates; other control
characters, zero-width marks and PDF ligatures only hurt search, so they go too.
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls except \t \n, DEL, C1 controls, lone surrogates, noncharacters.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_SPACES = re.compile("[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_LIGATURES = str.maketrans(
    {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
)
_MANY_NEWLINES = re.compile(r"\n{3,}")
_LINE_EDGES = re.compile(r" ?\n ?")  # after _SPACES, at most one space sits at a line edge


def clean_text(text: str, *, keep_indent: bool = False) -> str:
    """NFC, no control/zero-width chars, single spaces, lines trimmed, ≤ 1 blank line in a row.

    `keep_indent` keeps leading spaces (Markdown code blocks and nested lists depend on them).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = _CONTROL.sub("", text)
    text = _ZERO_WIDTH.sub("", text)
    text = unicodedata.normalize("NFC", text.translate(_LIGATURES))
    if keep_indent:
        text = "\n".join(_indented_line(line) for line in text.split("\n"))
        return _MANY_NEWLINES.sub("\n\n", text).strip("\n")
    text = _LINE_EDGES.sub("\n", _SPACES.sub(" ", text))
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def _indented_line(line: str) -> str:
    body = line.lstrip(" \t")
    indent = line[: len(line) - len(body)].replace("\t", "    ")
    body = _SPACES.sub(" ", body).rstrip()
    return indent + body if body else ""


def one_line(text: str) -> str:
    """Cleaned text on a single line (titles, headings, table cells)."""
    return " ".join(clean_text(text).split())
