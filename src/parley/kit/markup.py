"""Markdown's inline markup as a reader sees it rendered, for text shown outside a Markdown
renderer: a source's title, a quoted sentence."""

from __future__ import annotations

import re

_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_STRONG = re.compile(r"(\*\*|__)(.+?)\1")
_CODE_SPAN = re.compile(r"`+([^`]+?)`+")


def without_links_and_bold(text: str) -> str:
    """Links as their text, bold markers dropped; code spans and single `*`/`_` stay (names
    such as PARLEY_X_Y use them)."""
    return _STRONG.sub(r"\2", _LINK.sub(r"\1", text))


def without_code_spans(text: str) -> str:
    """Code spans as their content, without the backticks."""
    return _CODE_SPAN.sub(r"\1", text)
