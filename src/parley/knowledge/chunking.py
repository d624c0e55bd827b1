"""Structure-aware chunking: `ExtractedDocument` → token-bounded, heading-carrying chunks.

Rules, in order of precedence:
- A chunk never spans two pages, and never two top-level sections: small consecutive
  sections under the same top-level heading (and page) are packed together while they fit.
  A heading every section shares (the one H1 of a Markdown page) is not the top level;
  the level below it is.
- A section too big for one chunk is split at paragraph, then line (as Markdown reads lines:
  soft-wrapped ones stay with their sentence), then sentence, then word boundaries (a word
  longer than the budget is cut by characters, its last resort), and consecutive chunks of
  that section overlap by up to `overlap_tokens`.
- Every chunk's `text` starts with its heading path ("Guide > Setup") so keyword and vector
  search see the headings; `body` is the same text without it (for snippets).
- Atomic sections (FAQ pairs) are one chunk each, never split, even over the budget.
- Token counts are `tokens.count_tokens` (an approximation, see there); the output depends
  only on the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parley.knowledge.document import ExtractedDocument, Section
from parley.knowledge.tokens import count_tokens, split_by_tokens

HEADING_SEPARATOR = " > "
MIN_MAX_TOKENS = 20

_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "cf", "fig", "no"}
)
# Linear time on hostile input: a match starts only at the first mark of a run (lookbehind)
# and possessive quantifiers never backtrack into it.
_SENTENCE_END = re.compile(
    r"(?<![.!?…])[.!?…]++[\"'”’)\]]*+(?=\s+[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ\u3040-\u30ff\u4e00-\u9fff])"
    r"|(?<![。！？])[。！？]++"
)


@dataclass(frozen=True, slots=True)
class Chunk:
    ordinal: int
    text: str
    heading_path: list[str]
    page: int | None
    token_count: int
    body: str


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    cost: int
    sep: str  # joins this unit to the previous one inside a chunk


def chunk(
    document: ExtractedDocument, *, max_tokens: int = 300, overlap_tokens: int = 50
) -> list[Chunk]:
    if max_tokens < MIN_MAX_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_MAX_TOKENS}")
    if not 0 <= overlap_tokens <= max_tokens // 2:
        raise ValueError("overlap_tokens must be between 0 and max_tokens / 2")
    builder = _Builder(max_tokens, overlap_tokens)
    # Headings every section shares (a document's single H1) do not count as top level.
    paths = [s.heading_path for s in document.sections if s.heading_path]
    shared = len(_common_prefix(paths)) if len(paths) == len(document.sections) > 0 else 0
    pending: list[Section] = []
    for section in document.sections:
        if not section.text.strip():
            continue
        if section.atomic:
            builder.flush_group(pending)
            builder.emit(section.heading_path, section.page, section.text)
            continue
        joinable = pending and _joinable(pending[-1], section, shared)
        if joinable and builder.fits([*pending, section]):
            pending.append(section)
            continue
        builder.flush_group(pending)
        if builder.fits([section]):
            pending.append(section)
        else:
            builder.split_section(section)
    builder.flush_group(pending)
    return builder.chunks


def heading_prefix(path: list[str]) -> str:
    return HEADING_SEPARATOR.join(path)


def _joinable(previous: Section, section: Section, shared: int) -> bool:
    top = shared + 1
    return (
        previous.page == section.page and previous.heading_path[:top] == section.heading_path[:top]
    )


class _Builder:
    def __init__(self, max_tokens: int, overlap_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.chunks: list[Chunk] = []

    def emit(self, path: list[str], page: int | None, body: str) -> None:
        prefix = self._prefix(path)
        text = f"{prefix}\n\n{body}" if prefix else body
        self.chunks.append(
            Chunk(
                ordinal=len(self.chunks),
                text=text,
                heading_path=list(path),
                page=page,
                token_count=count_tokens(text),
                body=body,
            )
        )

    def _prefix(self, path: list[str]) -> str:
        """The heading line, cut to a third of the budget so the body keeps room."""
        prefix = heading_prefix(path)
        cap = self.max_tokens // 3
        if count_tokens(prefix) <= cap:
            return prefix
        words: list[str] = []
        for word in prefix.split():
            if count_tokens(" ".join([*words, word])) > cap - 1:
                break
            words.append(word)
        return " ".join(words) + "…" if words else ""

    def _render(self, group: list[Section]) -> tuple[list[str], str]:
        common = _common_prefix([s.heading_path for s in group])
        parts = []
        for s in group:
            relative = s.heading_path[len(common) :]
            parts.append(f"{heading_prefix(relative)}\n{s.text}" if relative else s.text)
        return common, "\n\n".join(parts)

    def fits(self, group: list[Section]) -> bool:
        # cheap lower bounds first: ≥ 1 token a word, ≥ 1 token per 8 non-space characters
        words = sum(len(s.text.split()) for s in group)
        chars = sum(len(s.text) for s in group)
        if words > self.max_tokens or chars - words > 9 * self.max_tokens:
            return False
        common, body = self._render(group)
        prefix = self._prefix(common)
        return count_tokens(prefix) + count_tokens(body) <= self.max_tokens

    def flush_group(self, group: list[Section]) -> None:
        if group:
            common, body = self._render(group)
            self.emit(common, group[0].page, body)
            group.clear()

    def split_section(self, section: Section) -> None:
        budget = self.max_tokens - count_tokens(self._prefix(section.heading_path))
        overlap = self.overlap_tokens
        current: list[_Unit] = []
        used = 0
        for unit in _units(section.text, budget - overlap):
            if current and used + unit.cost > budget:
                self.emit(section.heading_path, section.page, _join(current))
                current = _tail(current, overlap)
                used = sum(u.cost for u in current)
            current.append(unit)
            used += unit.cost
        if current:
            self.emit(section.heading_path, section.page, _join(current))


def _common_prefix(paths: list[list[str]]) -> list[str]:
    common = list(paths[0])
    for path in paths[1:]:
        n = 0
        while n < len(common) and n < len(path) and common[n] == path[n]:
            n += 1
        common = common[:n]
    return common


def _join(units: list[_Unit]) -> str:
    return "".join(u.text if i == 0 else u.sep + u.text for i, u in enumerate(units))


def _tail(units: list[_Unit], overlap: int) -> list[_Unit]:
    """The end of a chunk to repeat at the start of the next: whole units, else last words."""
    if overlap <= 0:
        return []
    kept: list[_Unit] = []
    used = 0
    for unit in reversed(units):
        if used + unit.cost > overlap:
            break
        kept.insert(0, unit)
        used += unit.cost
    if kept:
        return kept
    words = units[-1].text.split()
    tail: list[str] = []
    for word in reversed(words):
        cost = count_tokens(word)
        if used + cost > overlap:
            break
        tail.insert(0, word)
        used += cost
    return [_Unit(" ".join(tail), used, " ")] if tail else []


def _units(text: str, limit: int) -> list[_Unit]:
    """Pieces of at most `limit` tokens, split at the coarsest boundary that suffices."""
    units: list[_Unit] = []
    for paragraph in text.split("\n\n"):
        if not paragraph.strip():
            continue
        _split(paragraph, limit, "\n\n", units, level=0)
    return units


def _split(
    text: str, limit: int, sep: str, out: list[_Unit], *, level: int, cost: int | None = None
) -> None:
    cost = count_tokens(text) if cost is None else cost
    if cost <= limit:
        out.append(_Unit(text, cost, sep))
        return
    if level >= 2:  # words: one pass, cut at spaces, inside a word only when it has none
        for i, (piece, word_start) in enumerate(split_by_tokens(text, limit)):
            out.append(_Unit(piece, count_tokens(piece), sep if i == 0 else _word_sep(word_start)))
        return
    parts, inner = (logical_lines(text), "\n") if level == 0 else (sentences(text), " ")
    parts = [p for p in parts if p.strip()]
    if len(parts) == 1:  # nothing to split at this level: go finer without recounting
        _split(parts[0], limit, sep, out, level=level + 1, cost=cost)
        return
    for i, part in enumerate(parts):
        _split(part, limit, sep if i == 0 else inner, out, level=level + 1)


_BLOCK_START = re.compile(r"^\s*(?:[-*+]\s|\d{1,9}[.)]\s|\||>|#{1,6}\s)")
_FENCE_LINE = re.compile(r"^\s*(?:`{3,}|~{3,})")


def logical_lines(paragraph: str) -> list[str]:
    """A paragraph's lines as Markdown reads them: a soft-wrapped line ("…since embedding
    is" / "idempotent.") continues the sentence of the line before, so the two stay one
    piece and a chunk never ends in the middle of that sentence. A list item, table row,
    quote or heading starts a new line; fenced and indented code keep every line apart."""
    out: list[str] = []
    fence = False
    prose = False  # whether the last line is text a following plain line continues
    for line in paragraph.split("\n"):
        if _FENCE_LINE.match(line):
            fence = not fence
            out.append(line)
            prose = False
            continue
        plain = not fence and not _BLOCK_START.match(line) and bool(line.strip())
        if plain and prose and out:
            out[-1] += "\n" + line
            continue
        out.append(line)
        code = line.startswith(("    ", "\t")) and len(out) == 1
        prose = not fence and not code and not line.lstrip().startswith("|") and bool(line.strip())
    return out


def _word_sep(word_start: bool) -> str:
    return " " if word_start else ""


def sentences(text: str) -> list[str]:
    """Split after sentence-final punctuation followed by a capitalised start."""
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        window = max(start, match.start() - 12)  # abbreviations are short: look back a little
        before = text[window : match.start()].replace("\n", " ")
        token = before[before.rfind(" ") + 1 :].lower().rstrip(".")
        if match.group(0) == "." and (token in _ABBREVIATIONS or len(token) == 1):
            continue
        out.append(text[start:end].strip())
        start = end
    if start < len(text):
        out.append(text[start:].strip())
    return [s for s in out if s]
