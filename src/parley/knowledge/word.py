"""DOCX via python-docx: headings become the heading path, tables are read row by row.

A .docx is a zip, so the archive is checked before python-docx inflates it: the sum of the
members' declared sizes is capped (zipfile never inflates a member past its declared size,
so the declared total bounds memory), and so are the member count and the number of
paragraphs and table cells (counted in the raw XML before python-docx builds objects for
them: `ingest_too_many_elements`). Headers, footers, footnotes and comments are not read.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib

import docx
from docx.opc.exceptions import OpcError
from docx.table import Table
from docx.text.paragraph import Paragraph

from parley.knowledge.clean import clean_text, one_line
from parley.knowledge.document import ExtractedDocument, Section
from parley.knowledge.errors import (
    CorruptFile,
    DocumentTooLarge,
    EmptyDocument,
    TextTooLarge,
    TooManyElements,
)

MAX_MEMBERS = 10_000
MAX_BLOCKS = 200_000  # paragraphs and table cells: python-docx costs ~50 µs each
# Any namespace prefix (or none): a hostile file need not call WordprocessingML `w:`.
_BLOCK = re.compile(rb"<(?:[A-Za-z0-9_.-]+:)?(?:p|tc)[\s>/]")
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_MAX_TABLE_DEPTH = 5
# What python-docx and lxml raise on malformed parts (hostile input reaches deep code paths).
_PARSE_ERRORS = (
    OpcError,
    KeyError,
    ValueError,
    SyntaxError,
    AttributeError,
    IndexError,
    TypeError,
    zipfile.BadZipFile,
    zlib.error,
)


def is_docx_zip(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def check_archive(data: bytes, *, max_uncompressed_bytes: int) -> None:
    """Refuse archives that are not Word documents or would inflate past the limit."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptFile("The file is not a valid DOCX (ZIP) archive") from exc
    if len(members) > MAX_MEMBERS:
        raise DocumentTooLarge(f"The DOCX archive has more than {MAX_MEMBERS} entries")
    total = sum(m.file_size for m in members)
    if total > max_uncompressed_bytes:
        raise DocumentTooLarge(
            f"The DOCX would inflate to {total} bytes; the limit is {max_uncompressed_bytes}"
        )
    if "word/document.xml" not in {m.filename for m in members}:
        raise CorruptFile("The ZIP archive is not a Word document")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        try:
            body = archive.read("word/document.xml")
        except (zipfile.BadZipFile, OSError, ValueError, zlib.error) as exc:
            raise CorruptFile("The DOCX cannot be read") from exc
    blocks = sum(1 for _ in _BLOCK.finditer(body))
    if blocks > MAX_BLOCKS:
        raise TooManyElements(
            f"The DOCX has {blocks} paragraphs and table cells; the limit is {MAX_BLOCKS}"
        )


def extract_docx(
    data: bytes,
    *,
    filename_title: str | None,
    max_uncompressed_bytes: int,
    max_text_chars: int | None = None,
) -> ExtractedDocument:
    check_archive(data, max_uncompressed_bytes=max_uncompressed_bytes)
    try:
        return _read(data, filename_title, max_text_chars)
    except _PARSE_ERRORS as exc:  # lxml's XMLSyntaxError is a SyntaxError
        raise CorruptFile("The DOCX cannot be read") from exc


def _read(data: bytes, filename_title: str | None, max_text_chars: int | None) -> ExtractedDocument:
    document = docx.Document(io.BytesIO(data))
    blocks = document.iter_inner_content()
    core_title = one_line(document.core_properties.title or "")

    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    paragraphs: list[str] = []
    title_style: str | None = None

    def flush() -> None:
        body = clean_text("\n\n".join(paragraphs))
        if body:
            sections.append(Section(heading_path=[h for _, h in path], text=body))
        paragraphs.clear()

    chars = 0
    styles: dict[str | None, tuple[int | None, bool]] = {}
    for block in blocks:
        text = table_text(block) if isinstance(block, Table) else one_line(block.text)
        chars += len(text)
        if max_text_chars is not None and chars > max_text_chars:  # stop reading blocks
            raise TextTooLarge(f"The DOCX holds more than {max_text_chars} characters of text.")
        if isinstance(block, Table):
            paragraphs.append(text)
            continue
        if not text:
            continue
        level, is_title = _heading_level(block, styles)
        if is_title and title_style is None:
            title_style = text
        if level is None:
            paragraphs.append(text)
            continue
        flush()
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, text))
    flush()
    if not sections:
        raise EmptyDocument()
    headings = next((s.heading_path[0] for s in sections if s.heading_path), None)
    title = core_title or title_style or headings or filename_title or "Untitled"
    return ExtractedDocument(title=title, sections=sections, format="docx")


def table_text(table: Table, depth: int = 0) -> str:
    """One line per row, cells joined by " | " (merged cells once), nested tables after."""
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        nested: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(one_line(cell.text))
            if depth < _MAX_TABLE_DEPTH:
                nested.extend(table_text(t, depth + 1) for t in cell.tables)
        if any(cells):
            rows.append(" | ".join(cells))
        rows.extend(n for n in nested if n)
    return "\n".join(rows)


def _heading_level(
    paragraph: Paragraph, cache: dict[str | None, tuple[int | None, bool]]
) -> tuple[int | None, bool]:
    """Per style id, looked up once: python-docx resolves a style (the default one too) by
    scanning every style of the document, which cost O(paragraphs × styles) — minutes for a
    few hundred thousand paragraphs."""
    key = paragraph._p.style
    found = cache.get(key)
    if found is None:
        found = cache[key] = _style_level(paragraph)
    return found


def _style_level(paragraph: Paragraph) -> tuple[int | None, bool]:
    try:
        name = paragraph.style.name if paragraph.style is not None else ""
    except (KeyError, ValueError):
        return None, False
    match = _HEADING_STYLE.match(name or "")
    if match:
        return int(match.group(1)), False
    return None, (name or "").lower() == "title"
