"""Markdown (and pasted text): kept as written, ATX and setext headings become structure."""

from __future__ import annotations

import re

from parley.kit.markup import without_code_spans, without_links_and_bold
from parley.knowledge.clean import clean_text, one_line
from parley.knowledge.document import ExtractedDocument, Section
from parley.knowledge.errors import EmptyDocument

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER_TITLE = re.compile(r"(?m)^title:(.*)$")


def plain_heading(text: str) -> str:
    """A heading as a reader sees it rendered: "OpenAI-compatible API (`/v1/compat/*`)" is
    shown as a source's title and cited under the answer, where backticks would be noise."""
    return without_links_and_bold(without_code_spans(text)).strip()


def split_front_matter(text: str) -> tuple[str, str | None]:
    """Strip a leading YAML front-matter block; return the text and its `title:` if any."""
    if not text.startswith("---\n"):
        return text, None
    end = text.find("\n---", 4)
    if end < 0:
        return text, None
    block = text[4:end]
    match = _FRONT_MATTER_TITLE.search(block)
    rest = text[end + 4 :].lstrip("-").lstrip("\n")
    title = one_line(match.group(1)).strip("\"'").strip() if match else ""
    return rest, title or None


def markdown_sections(text: str) -> list[Section]:
    """Sections split at headings; fenced code blocks are never read as headings."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    fence: str | None = None

    def flush() -> None:
        body = clean_text("\n".join(lines), keep_indent=True)
        if body.strip():
            sections.append(Section(heading_path=[h for _, h in path], text=body))
        lines.clear()

    def open_heading(level: int, title: str) -> None:
        flush()
        while path and path[-1][0] >= level:
            path.pop()
        if title:
            path.append((level, title))

    for raw in text.split("\n"):
        fence_match = _FENCE.match(raw)
        if fence is not None:
            lines.append(raw)
            if fence_match and fence_match.group(1)[0] == fence[0]:
                fence = None
            continue
        if fence_match:
            fence = fence_match.group(1)
            lines.append(raw)
            continue
        atx = _ATX.match(raw)
        if atx:
            open_heading(len(atx.group(1)), plain_heading(one_line(atx.group(2) or "")))
            continue
        setext = _SETEXT.match(raw)
        if setext and lines and lines[-1].strip() and not _is_list_item(lines[-1]):
            title = plain_heading(one_line(lines.pop()))
            open_heading(1 if setext.group(1)[0] == "=" else 2, title)
            continue
        lines.append(raw)
    flush()
    return sections


def first_heading(sections: list[Section]) -> str | None:
    for section in sections:
        if section.heading_path:
            return section.heading_path[0]
    return None


def _is_list_item(line: str) -> bool:
    return bool(re.match(r"^\s*([-*+]|\d+[.)])\s", line))


def text_document(title: str, text: str) -> ExtractedDocument:
    """Pasted text: one section; Markdown-style headings are recognised as structure."""
    clean_title = clean_text(title).replace("\n", " ").strip()
    sections = markdown_sections(text.replace("\r\n", "\n"))
    if not sections:
        raise EmptyDocument()
    return ExtractedDocument(title=clean_title or "Untitled", sections=sections, format="text")
