"""Extraction of real files per format, and the refusals a user sees for bad ones."""

from __future__ import annotations

import random

import pytest

from parley.kit.errors import ParleyError
from parley.knowledge.errors import (
    CorruptFile,
    DocumentTooLarge,
    EmptyDocument,
    FileTooLarge,
    HtmlTooDeep,
    UnsupportedFileType,
)
from parley.knowledge.extract import extract
from parley.knowledge.pdf import page_text
from tests.knowledge.samples import (
    add_member,
    make_docx,
    make_image_only_pdf,
    make_pdf,
    make_zip,
)

PROSE = (
    "Our support team answers every request within one business day. "
    "Enterprise customers get a named account manager and a private channel. "
) * 12


def _refused(exc: pytest.ExceptionInfo[ParleyError], status: int, code: str) -> None:
    assert isinstance(exc.value, ParleyError)
    assert (exc.value.status, exc.value.code) == (status, code)


# --- PDF -------------------------------------------------------------------------------


def test_pdf_has_one_section_per_page_with_outline_headings_and_metadata_title() -> None:
    data = make_pdf(
        [
            ("Getting started", PROSE + "\n\nThe setup is extra-\nordinary simple."),
            (None, "Page two continues the first chapter.\n\nIt has two paragraphs."),
            ("Billing", "Invoices are sent monthly.\nPayment is due in 14 days."),
        ],
        title="Customer Handbook",
    )
    doc = extract(data, filename="handbook.pdf", content_type="application/pdf")

    assert doc.format == "pdf"
    assert doc.title == "Customer Handbook"
    assert doc.page_count == 3
    assert [s.page for s in doc.sections] == [1, 2, 3]
    assert [s.heading_path for s in doc.sections] == [
        ["Getting started"],
        ["Getting started"],
        ["Billing"],
    ]
    first = doc.sections[0].text
    assert "named account manager and a private channel" in first
    assert "extraordinary simple" in first  # the word broken at the line end is whole again
    assert "\r" not in first
    assert "  " not in first
    assert "Page two continues the first chapter." in doc.sections[1].text


def test_pdf_title_falls_back_to_the_file_name() -> None:
    data = make_pdf([(None, "Plain text on one page.")])
    doc = extract(data, filename="price_list 2026.pdf", content_type=None)
    assert doc.title == "price list 2026"


def test_pdf_line_end_hyphens_are_joined_and_paragraphs_rebuilt() -> None:
    raw = (
        "The infor-\r\nmation on this page is wrapped by the layout engine at a fixed\r\n"
        "width, so lines end mid sentence and the extractor must join them again.\r\n"
        "Short closing line.\r\n"
        "A new paragraph starts here."
    )
    text = page_text(raw)
    assert text.startswith("The information on this page is wrapped by the layout engine")
    assert "fixed width, so lines end" in text
    assert "Short closing line.\n\nA new paragraph starts here." in text


def test_truncated_pdf_is_corrupt() -> None:
    data = make_pdf([(None, PROSE)] * 2)
    with pytest.raises(CorruptFile) as exc:
        extract(data[: len(data) // 2], filename="cut.pdf", content_type="application/pdf")
    _refused(exc, 422, "corrupt_file")


def test_random_bytes_named_pdf_are_corrupt() -> None:
    noise = random.Random(7).randbytes(4096)
    with pytest.raises(CorruptFile) as exc:
        extract(noise, filename="report.pdf", content_type="application/octet-stream")
    _refused(exc, 422, "corrupt_file")


def test_password_protected_pdf_is_refused_as_unreadable() -> None:
    data = make_pdf([(None, PROSE)], password="secret")
    with pytest.raises(CorruptFile, match="password"):
        extract(data, filename="locked.pdf", content_type=None)


@pytest.mark.parametrize("kind", ["image-only", "blank"])
def test_pdf_without_a_text_layer_is_empty(kind: str) -> None:
    data = make_image_only_pdf() if kind == "image-only" else make_pdf([(None, "")] * 2)
    with pytest.raises(EmptyDocument) as exc:
        extract(data, filename="scan.pdf", content_type=None)
    _refused(exc, 422, "empty_document")


def test_pdf_page_limit() -> None:
    data = make_pdf([(None, "one")] * 3)
    with pytest.raises(DocumentTooLarge):
        extract(data, filename="a.pdf", content_type=None, max_pdf_pages=2)


# --- DOCX ------------------------------------------------------------------------------


def test_docx_headings_become_heading_paths_and_tables_are_read() -> None:
    doc = extract(make_docx(), filename="policy.docx", content_type=None)

    assert doc.format == "docx"
    assert doc.title == "Returns policy"  # no core title: the first heading
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (["Returns policy"], "Items can be returned within 30 days of delivery."),
        (
            ["Returns policy", "Refunds"],
            "Refunds are paid to the original payment method.\n\n"
            "Region | Days\nEurope | 14\nElsewhere | 30",
        ),
        (["Shipping"], "We ship worldwide with tracked parcels."),
    ]
    assert all(s.page is None for s in doc.sections)


def test_docx_core_title_wins() -> None:
    doc = extract(make_docx(core_title="Policies 2026"), filename="p.docx", content_type=None)
    assert doc.title == "Policies 2026"


def test_zip_named_docx_that_is_not_a_word_document_is_corrupt() -> None:
    data = make_zip({"xl/workbook.xml": b"<workbook/>", "[Content_Types].xml": b"<Types/>"})
    with pytest.raises(CorruptFile) as exc:
        extract(data, filename="sheet.docx", content_type=None)
    _refused(exc, 422, "corrupt_file")


def test_docx_with_broken_xml_is_corrupt() -> None:
    good = make_docx()
    import io
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(good))
    members = {n: src.read(n) for n in src.namelist()}
    members["word/document.xml"] = members["word/document.xml"][:200]
    with pytest.raises(CorruptFile):
        extract(make_zip(members), filename="broken.docx", content_type=None)


def test_docx_zip_bomb_is_refused_before_inflating() -> None:
    # 120 MB of zeros deflates to about 120 KB: over the default 100 MB inflated limit.
    bomb = add_member(make_docx(), "word/media/image1.bin", zeros=120 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    with pytest.raises(DocumentTooLarge) as exc:
        extract(bomb, filename="bomb.docx", content_type=None)
    _refused(exc, 422, "document_too_large")


def test_docx_inflated_limit_is_a_parameter() -> None:
    data = add_member(make_docx(), "word/media/pad.bin", zeros=2 * 1024 * 1024)
    assert extract(data, filename="a.docx", content_type=None).sections
    with pytest.raises(DocumentTooLarge):
        extract(data, filename="a.docx", content_type=None, max_docx_uncompressed_bytes=10**6)


def test_plain_zip_is_unsupported() -> None:
    data = make_zip({"notes.txt": b"hello"})
    with pytest.raises(UnsupportedFileType):
        extract(data, filename="notes.zip", content_type="application/zip")


# --- HTML ------------------------------------------------------------------------------

PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="windows-1252"><title>Acme \x96 Help centre</title>
<style>body { color: red }</style><script>var tracking = "SECRET-TRACKER";</script></head>
<body>
<nav><a href="/">Home</a> <a href="/pricing">Pricing menu</a></nav>
<header><h1>Help centre</h1></header>
<h2>Passwords</h2>
<p>To reset your password, open <b>Settings</b> and choose <em>Reset</em>.</p>
<p>Links expire after 24&nbsp;hours &amp; can be used once.</p>
<h3>Two-factor</h3>
<ul><li>Open the app</li><li>Scan the code</li></ul>
<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Pro</td><td>9 \x80</td></tr></table>
<noscript>Enable JavaScript</noscript>
<footer>Copyright Acme footer text</footer>
<script>console.log("more noise")</script>
</body></html>"""


def test_html_drops_boilerplate_and_keeps_headings_and_title() -> None:
    doc = extract(PAGE, filename="help.html", content_type="text/html")

    assert doc.format == "html"
    assert doc.title == "Acme – Help centre"  # cp1252 en dash from the meta charset
    text = doc.text
    for noise in ("SECRET-TRACKER", "color: red", "Pricing menu", "footer text", "JavaScript"):
        assert noise not in text
    paths = [s.heading_path for s in doc.sections]
    assert paths == [
        ["Help centre", "Passwords"],
        ["Help centre", "Passwords", "Two-factor"],
    ]
    assert doc.sections[0].text == (
        "To reset your password, open Settings and choose Reset.\n\n"
        "Links expire after 24 hours & can be used once."
    )
    two_factor = doc.sections[1].text
    assert "Open the app\n\nScan the code" in two_factor
    assert "Plan | Price\nPro | 9 €" in two_factor


def test_html_main_element_is_preferred_over_site_chrome() -> None:
    html = (
        b"<html><body><div class='sidebar'>Related posts everywhere</div>"
        b"<main><h1>Article</h1><p>The real content.</p></main></body></html>"
    )
    doc = extract(html, filename=None, content_type="text/html; charset=utf-8")
    assert doc.text == "The real content."
    assert doc.title == "Article"


def test_html_deeply_nested_markup_does_not_crash() -> None:
    html = b"<html><body>" + b"<div>" * 5000 + b"deep text" + b"</div>" * 5000 + b"</body></html>"
    doc = extract(html, filename="deep.html", content_type=None, max_html_depth=6000)
    assert doc.text == "deep text"
    with pytest.raises(HtmlTooDeep):  # past the default depth: refused before parsing
        extract(html, filename="deep.html", content_type=None)


def test_html_with_only_scripts_is_empty() -> None:
    html = b"<html><head><title>App</title></head><body><script>boot()</script></body></html>"
    with pytest.raises(EmptyDocument):
        extract(html, filename="app.html", content_type=None)


# --- Markdown and text -----------------------------------------------------------------

MARKDOWN = """---
title: Operator guide
---
Intro before any heading.

# Install

Run the installer.

## Requirements

* 2 cores
* 4 GB RAM

```bash
# not a heading: a shell comment
make install
```

Upgrade notes
-------------

Back up first.

# Operate

Watch the logs.
"""


def test_markdown_headings_become_paths_and_code_fences_are_left_alone() -> None:
    doc = extract(MARKDOWN.encode(), filename="guide.md", content_type="text/plain")

    assert doc.format == "markdown"
    assert doc.title == "Operator guide"
    assert [s.heading_path for s in doc.sections] == [
        [],
        ["Install"],
        ["Install", "Requirements"],
        ["Install", "Upgrade notes"],
        ["Operate"],
    ]
    requirements = doc.sections[2].text
    assert "* 2 cores\n* 4 GB RAM" in requirements
    assert "# not a heading: a shell comment\nmake install" in requirements


def test_markdown_title_is_the_first_heading_without_front_matter() -> None:
    doc = extract(b"# Release notes\n\nFixed things.", filename="n.md", content_type=None)
    assert doc.title == "Release notes"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Café – naïve “quotes” 5 €".encode("cp1252"), "Café – naïve “quotes” 5 €"),
        ("Grüße aus Köln".encode(), "Grüße aus Köln"),
        ("\ufeffWith a BOM".encode(), "With a BOM"),
        ("Zwölf Boxkämpfer".encode("utf-16"), "Zwölf Boxkämpfer"),
        (b"undefined in cp1252: \x81\x8d.", "undefined in cp1252: ."),
    ],
)
def test_text_encodings(data: bytes, expected: str) -> None:
    doc = extract(data, filename="notes.txt", content_type=None)
    # bytes cp1252 leaves undefined decode as latin-1 C1 controls, which cleaning strips
    assert doc.text == expected
    assert doc.title == "notes"


def test_text_cleaning_strips_nul_and_controls_and_normalises_whitespace() -> None:
    data = b"First\x00 line\x07 with\ttabs   and\x0b  spaces \r\n\r\n\r\n\r\nSecond\x1b line"
    doc = extract(data, filename="t.txt", content_type=None)
    assert doc.text == "First line with tabs and spaces\n\nSecond line"


def test_declared_charset_is_used() -> None:
    data = "Ελληνικά".encode("iso-8859-7")
    doc = extract(data, filename="g.txt", content_type="text/plain; charset=iso-8859-7")
    assert doc.text == "Ελληνικά"


# --- Detection and limits --------------------------------------------------------------


def test_magic_bytes_win_over_the_name() -> None:
    data = make_pdf([(None, "I am really a PDF.")])
    doc = extract(data, filename="notes.txt", content_type="text/plain")
    assert doc.format == "pdf"
    assert doc.text == "I am really a PDF."


@pytest.mark.parametrize(
    ("data", "filename", "content_type"),
    [
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200), "setup.exe", "application/octet-stream"),
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200), "readme.txt", "text/plain"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "logo.png", "image/png"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "logo.pdf", "application/pdf"),
        (b"a,b\n1,2\n", "data.csv", "text/csv"),
        (b"name: value\n", "config.yaml", None),
    ],
)
def test_unsupported_types_are_refused(
    data: bytes, filename: str, content_type: str | None
) -> None:
    with pytest.raises(UnsupportedFileType) as exc:
        extract(data, filename=filename, content_type=content_type)
    _refused(exc, 422, "unsupported_file_type")


def test_a_pdf_header_quoted_in_a_text_file_does_not_make_it_a_pdf() -> None:
    doc = extract(b"PDF files start with %PDF-1.7 bytes.", filename="n.txt", content_type=None)
    assert doc.format == "text"


def test_nameless_text_is_sniffed() -> None:
    assert extract(b"<!doctype html><p>Hi</p>", filename=None, content_type=None).format == "html"
    assert extract(b"just words", filename=None, content_type=None).format == "text"


def test_size_limit_and_empty_file() -> None:
    with pytest.raises(FileTooLarge) as exc:
        extract(b"x" * 101, filename="a.txt", content_type=None, max_bytes=100)
    _refused(exc, 413, "file_too_large")
    for empty in (b"", b"  \n\t "):
        with pytest.raises(EmptyDocument):
            extract(empty, filename="a.txt", content_type=None)
