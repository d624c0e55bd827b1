"""PDF via PDFium (pypdfium2, Apache/BSD; PyMuPDF is AGPL): one section per page.

PDF text has no paragraphs, only positioned lines, so paragraphs are rebuilt from line
lengths and end punctuation, and words broken at line ends are joined again. Headings come
from the outline (bookmarks) when the PDF has one. PDFium is not thread-safe, so every call
into it holds one process-wide lock (safe under `asyncio.to_thread`; use processes to scale).
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pypdfium2 as pdfium

from parley.knowledge.clean import clean_text, one_line
from parley.knowledge.document import ExtractedDocument, Section
from parley.knowledge.errors import CorruptFile, DocumentTooLarge, EmptyDocument, TextTooLarge

_PDFIUM_LOCK = threading.Lock()
MAX_BOOKMARKS = 10_000

# PDFium marks a hyphen it recognises as a line-end word break with U+FFFE (older builds: U+0002).
_SOFT_BREAK = re.compile("[\ufffe\x02\u00ad][ \t]*(?:\r?\n)?")
_HARD_BREAK = re.compile(r"(?<=[^\W\d_])-[ \t]*\n[ \t]*(?=[a-zà-ÿ])")
_LINE_END = re.compile(r"[.!?:;\"”’)\]]$")
_LIST_ITEM = re.compile(r"^([•·▪◦‣∙*–-]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s")
_PRODUCER_PREFIX = re.compile(r"^Microsoft (Word|PowerPoint) - ", re.IGNORECASE)


def extract_pdf(
    data: bytes, *, filename_title: str | None, max_pages: int, max_text_chars: int | None = None
) -> ExtractedDocument:
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise CorruptFile("The PDF is password-protected") from exc
            raise CorruptFile("The PDF cannot be read") from exc
        try:
            return _read(
                pdf,
                filename_title=filename_title,
                max_pages=max_pages,
                max_text_chars=max_text_chars,
            )
        finally:
            pdf.close()


def _read(
    pdf: Any, *, filename_title: str | None, max_pages: int, max_text_chars: int | None
) -> ExtractedDocument:
    page_count = len(pdf)
    if page_count > max_pages:
        raise DocumentTooLarge(f"The PDF has {page_count} pages; the limit is {max_pages}")
    outline = _outline(pdf, page_count)
    sections: list[Section] = []
    path: list[str] = []
    chars = 0
    for index in range(page_count):
        try:
            page = pdf[index]
            try:
                textpage = page.get_textpage()
                try:
                    raw = textpage.get_text_range()
                finally:
                    textpage.close()
            finally:
                page.close()
        except pdfium.PdfiumError as exc:
            raise CorruptFile(f"Page {index + 1} of the PDF cannot be read") from exc
        path = outline.get(index, path)
        text = page_text(raw)
        if text:
            sections.append(Section(heading_path=list(path), text=text, page=index + 1))
            chars += len(text)
            if max_text_chars is not None and chars > max_text_chars:  # stop reading pages
                raise TextTooLarge(
                    f"The PDF holds more than {max_text_chars} characters of text "
                    f"(reached on page {index + 1})."
                )
    if not sections:
        raise EmptyDocument(
            "The PDF has no text layer (a scanned document needs OCR before upload)"
        )
    metadata = _metadata(pdf)
    title = (
        _PRODUCER_PREFIX.sub("", metadata.get("title", ""))
        or next((p[0] for p in outline.values() if p), "")
        or filename_title
        or _first_line(sections[0].text)
    )
    return ExtractedDocument(
        title=title, sections=sections, format="pdf", page_count=page_count, metadata=metadata
    )


def page_text(raw: str) -> str:
    """One page's text: words re-joined across line breaks, paragraphs rebuilt, cleaned."""
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    raw = _SOFT_BREAK.sub("", raw)
    raw = _HARD_BREAK.sub("", raw)
    lines = [" ".join(line.split()) for line in raw.split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return ""
    full = lengths[int(0.8 * (len(lengths) - 1))]
    out: list[str] = []
    for line in lines:
        if not line:
            if out and out[-1] != "\n\n":
                out.append("\n\n")
            continue
        if out and out[-1] != "\n\n":
            previous = out[-1]
            if _LIST_ITEM.match(line):
                out.append("\n")
            elif _LINE_END.search(previous) and len(previous) < 0.75 * full:
                out.append("\n\n")
            else:
                out.append(" ")
        out.append(line)
    return clean_text("".join(out))


def _outline(pdf: Any, page_count: int) -> dict[int, list[str]]:
    """Page index → heading path of the last bookmark that starts on or before it."""
    try:
        entries: list[tuple[int, int, str]] = []
        for number, bookmark in enumerate(pdf.get_toc()):
            if number >= MAX_BOOKMARKS:
                break
            dest = bookmark.get_dest()
            index = dest.get_index() if dest is not None else None
            title = one_line(bookmark.get_title() or "")
            if index is not None and 0 <= index < page_count and title:
                entries.append((bookmark.level, index, title))
    except (pdfium.PdfiumError, ValueError, TypeError):
        return {}
    result: dict[int, list[str]] = {}
    stack: list[tuple[int, str]] = []
    last_index = -1
    for level, index, title in entries:
        if index < last_index:  # out-of-order outlines give no reliable page mapping
            return {}
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        result[index] = [t for _, t in stack]
        last_index = index
    return result


def _metadata(pdf: Any) -> dict[str, str]:
    try:
        raw = pdf.get_metadata_dict(skip_empty=True)
    except (pdfium.PdfiumError, TypeError):
        return {}
    keep = {"Title": "title", "Author": "author", "Subject": "subject"}
    return {keep[k]: one_line(v) for k, v in raw.items() if k in keep and one_line(v)}


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0][:120]
