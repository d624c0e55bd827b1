"""Bytes of an uploaded or fetched file → `ExtractedDocument`, whatever the format.

The format is decided by the bytes first (magic numbers), then the declared content type,
then the file extension: a PDF renamed .txt is still read as a PDF, and a known binary
format (image, executable, archive) is refused whatever its name says.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from parley.knowledge import htmldoc, markdown, pdf, word
from parley.knowledge.clean import clean_text
from parley.knowledge.decoding import declared_charset, decode_text, html_meta_charset
from parley.knowledge.document import (
    ExtractedDocument,
    Section,
    faq_document,
)
from parley.knowledge.errors import EmptyDocument, FileTooLarge, TextTooLarge, UnsupportedFileType
from parley.knowledge.markdown import text_document

__all__ = [
    "ACCEPTED_CONTENT_TYPES",
    "ACCEPTED_EXTENSIONS",
    "ExtractedDocument",
    "Section",
    "detect_format",
    "extract",
    "faq_document",
    "text_document",
]

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_DOCX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024
MAX_PDF_PAGES = 10_000
MAX_TEXT_CHARS = 4_000_000  # PARLEY_INGEST_MAX_TEXT_CHARS

FORMATS = ("pdf", "docx", "html", "markdown", "text")

_CONTENT_TYPES = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
}
_EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
}
# For upload forms (`accept=`) and API docs.
ACCEPTED_EXTENSIONS = tuple(_EXTENSIONS)
ACCEPTED_CONTENT_TYPES = tuple(_CONTENT_TYPES)
# Formats we recognise by their first bytes and refuse, so a renamed binary is never "text".
_REFUSED_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"MZ", "Windows executable"),
    (b"\x7fELF", "ELF executable"),
    (b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office document (.doc/.xls)"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"{\\rtf", "RTF document"),
    (b"OggS", "Ogg media"),
    (b"ID3", "MP3 audio"),
    (b"fLaC", "FLAC audio"),
    (b"\x00\x00\x01\x00", "icon"),
    (b"wOFF", "web font"),
    (b"wOF2", "web font"),
)


def detect_format(data: bytes, *, filename: str | None, content_type: str | None) -> str:
    """One of FORMATS, or UnsupportedFileType."""
    head = data[:1024]
    declared = _declared(filename, content_type)
    # PDF readers accept the header anywhere in the first KB; we do so for declared PDFs only.
    if head.startswith(b"%PDF-") or (b"%PDF-" in head and declared == "pdf"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        if word.is_docx_zip(data) or declared == "docx":
            return "docx"
        raise UnsupportedFileType("ZIP archives other than DOCX are not supported")
    for magic, name in _REFUSED_MAGIC:
        if head.startswith(magic):
            raise UnsupportedFileType(f"A {name} is not supported")
    if head[:12].startswith(b"RIFF") or head[4:8] == b"ftyp":
        raise UnsupportedFileType("Audio, video and image files are not supported")
    if declared is not None:
        return declared
    if filename and PurePosixPath(filename).suffix:
        raise UnsupportedFileType(
            f"Files of type {PurePosixPath(filename).suffix} are not supported"
        )
    if content_type and _media_type(content_type) not in ("", "application/octet-stream"):
        raise UnsupportedFileType(f"Content type {_media_type(content_type)} is not supported")
    sniff = head.lstrip().lower()
    if sniff.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "text"


def extract(
    data: bytes,
    *,
    filename: str | None,
    content_type: str | None,
    max_bytes: int = MAX_FILE_BYTES,
    max_docx_uncompressed_bytes: int = MAX_DOCX_UNCOMPRESSED_BYTES,
    max_pdf_pages: int = MAX_PDF_PAGES,
    max_html_depth: int = htmldoc.MAX_DEPTH,
    max_html_elements: int = htmldoc.MAX_ELEMENTS,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> ExtractedDocument:
    """Detect, extract and clean. Raises a `ParleyError` (422/413) for anything unusable.

    CPU-bound and synchronous: jobs run it in a separate process with a time limit
    (`knowledge.isolated`).
    """
    document = _extract(
        data,
        filename=filename,
        content_type=content_type,
        max_bytes=max_bytes,
        max_docx_uncompressed_bytes=max_docx_uncompressed_bytes,
        max_pdf_pages=max_pdf_pages,
        max_html_depth=max_html_depth,
        max_html_elements=max_html_elements,
        max_text_chars=max_text_chars,
    )
    check_text_size(document, max_text_chars)
    return document


def check_text_size(document: ExtractedDocument, max_text_chars: int) -> None:
    size = sum(len(s.text) for s in document.sections)
    if size > max_text_chars:
        raise TextTooLarge(
            f"The document holds {size} characters of text; the limit is {max_text_chars}."
        )


def _extract(
    data: bytes,
    *,
    filename: str | None,
    content_type: str | None,
    max_bytes: int,
    max_docx_uncompressed_bytes: int,
    max_pdf_pages: int,
    max_html_depth: int,
    max_html_elements: int,
    max_text_chars: int,
) -> ExtractedDocument:
    if len(data) > max_bytes:
        raise FileTooLarge(f"The file is {len(data)} bytes; the limit is {max_bytes}")
    if not data.strip():
        raise EmptyDocument("The file is empty")
    kind = detect_format(data, filename=filename, content_type=content_type)
    name_title = _filename_title(filename)
    if kind == "pdf":
        return pdf.extract_pdf(
            data,
            filename_title=name_title,
            max_pages=max_pdf_pages,
            max_text_chars=max_text_chars,
        )
    if kind == "docx":
        return word.extract_docx(
            data,
            filename_title=name_title,
            max_uncompressed_bytes=max_docx_uncompressed_bytes,
            max_text_chars=max_text_chars,
        )
    charset = declared_charset(content_type)
    if kind == "html":
        html = decode_text(data, declared=charset or html_meta_charset(data))
        return htmldoc.extract_html(
            html,
            filename_title=name_title,
            max_depth=max_html_depth,
            max_elements=max_html_elements,
        )
    text = decode_text(data, declared=charset)
    if kind == "markdown":
        return _markdown_document(text, name_title)
    return _plain_document(text, name_title)


def _markdown_document(text: str, name_title: str | None) -> ExtractedDocument:
    body, front_title = markdown.split_front_matter(text.replace("\r\n", "\n"))
    sections = markdown.markdown_sections(body)
    if not sections:
        raise EmptyDocument()
    title = front_title or markdown.first_heading(sections) or name_title or "Untitled"
    return ExtractedDocument(title=title, sections=sections, format="markdown")


def _plain_document(text: str, name_title: str | None) -> ExtractedDocument:
    body = clean_text(text)
    if not body:
        raise EmptyDocument()
    title = name_title or body.split("\n", 1)[0][:120]
    return ExtractedDocument(
        title=title, sections=[Section(heading_path=[], text=body)], format="text"
    )


def _declared(filename: str | None, content_type: str | None) -> str | None:
    by_name = _EXTENSIONS.get(PurePosixPath(filename).suffix.lower()) if filename else None
    by_type = _CONTENT_TYPES.get(_media_type(content_type))
    if by_type == "text" and by_name == "markdown":  # Markdown is usually served as text/plain
        return by_name
    return by_type or by_name


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _filename_title(filename: str | None) -> str | None:
    if not filename:
        return None
    stem = PurePosixPath(filename.replace("\\", "/")).stem
    return " ".join(stem.replace("_", " ").split()) or None
