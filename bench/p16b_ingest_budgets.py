"""P16b — ingestion budgets: the worst input of each format at the upload limit, and whether one
workspace's hostile file delays another's ingestion (issue 15)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import time
import zipfile
from collections.abc import Callable

from bench.report import Row, Section

LIMIT = 20 * 1024 * 1024  # PARLEY_KNOWLEDGE_MAX_FILE_BYTES default


def _fill(head: str, unit: str, tail: str = "") -> bytes:
    count = (LIMIT - len(head) - len(tail)) // len(unit)
    return (head + unit * count + tail).encode()


def html_nested() -> bytes:
    """The probe's input: nothing but nested `<div>`s (its 2.2 MB version took 222 s)."""
    return _fill("<html><body>", "<div>")


def html_deepest_accepted() -> bytes:
    """As deep (255) and as many elements (≈200,000) as the limits let through, the rest text."""
    block = "<div>" * 250 + "x" + "</div>" * 250
    blocks = 199_000 // 250
    body = block * blocks
    filler = "w " * ((LIMIT - len(body) - 40) // 2)
    return ("<html><body>" + body + "<p>" + filler + "</body></html>").encode()


def markdown_headings() -> bytes:
    """One heading per line: as many sections as lines."""
    return _fill("", "# h\n")


def text_one_word() -> bytes:
    """20 MiB without a space or newline: one 'word' the chunker must cut by size."""
    return b"a" * LIMIT


def text_words() -> bytes:
    return _fill("", "word ")


def docx_flood(paragraphs: int, text: str = "x") -> bytes:
    """A DOCX of `paragraphs` one-run paragraphs (python-docx's own package, its body
    replaced)."""
    import docx

    package = io.BytesIO()
    docx.Document().save(package)
    head = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body>"
    )
    unit = f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"
    xml = head + unit * paragraphs + "</w:body></w:document>"
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(package.getvalue())) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            body = xml.encode() if item.filename == "word/document.xml" else source.read(item)
            target.writestr(item.filename, body)
    return out.getvalue()


def pdf_page_flood() -> bytes:
    """About 19 MiB of pages (10,000 allowed), each full of short text objects: the most work
    per byte a text PDF gives PDFium."""
    from fpdf import FPDF

    rng = random.Random(15)
    pdf = FPDF()
    pdf.set_auto_page_break(auto=False)
    pdf.set_font("Helvetica", size=6)
    words = ["refund", "invoice", "warranty", "shipping", "account", "delivery", "policy"]
    for _ in range(6_500):
        pdf.add_page()
        for line in range(90):
            pdf.set_xy(5, 3 + line * 3.2)
            pdf.cell(0, 3, " ".join(rng.choice(words) for _ in range(30)))
    return bytes(pdf.output())


CASES: list[tuple[str, str, Callable[[], bytes]]] = [
    ("HTML", "nested `<div>` × 4.2 M (the probe's input)", html_nested),
    ("HTML", "255 deep × 199,000 elements + text (the most the limits accept)",
     html_deepest_accepted),
    ("Markdown", "a heading on every line", markdown_headings),
    ("TXT", "one 20 MiB word", text_one_word),
    ("TXT", "4.2 M words", text_words),
    ("DOCX", "2.9 M one-letter paragraphs (95 MiB inflated)",
     lambda: docx_flood(2_900_000)),
    ("DOCX", "199,000 paragraphs of 17 characters (the most the limits accept)",
     lambda: docx_flood(199_000, "refund policy day")),
    ("PDF", "6,500 pages × 90 lines of short text objects", pdf_page_flood),
]  # fmt: skip

NAMES = {"HTML": "x.html", "Markdown": "x.md", "TXT": "x.txt", "DOCX": "x.docx", "PDF": "x.pdf"}


async def _measure(name: str, data: bytes, seconds: float) -> tuple[float, str, str]:
    from parley.kit.errors import ParleyError
    from parley.knowledge import isolated

    limits = isolated.Limits(
        max_bytes=max(LIMIT, len(data)),
        max_html_depth=256,
        max_html_elements=200_000,
        max_text_chars=4_000_000,
        max_chunks=5_000,
        chunk_tokens=300,
        overlap_tokens=50,
    )
    started = time.perf_counter()
    try:
        out = await isolated.extract_chunks(
            data, filename=name, content_type=None, limits=limits, seconds=seconds
        )
        outcome, peak = f"{len(out.chunks)} chunks", f"{out.peak_rss_kb / 1024:.0f} MiB"
    except ParleyError as exc:
        kb = exc.extra.get("peak_rss_kb")
        outcome, peak = f"`{exc.code}`", f"{kb / 1024:.0f} MiB" if kb else "—"
    return time.perf_counter() - started, outcome, peak


def _old_html_seconds(data: bytes) -> float:
    """The code before the budgets: Lexbor tree building, no pre-scan."""
    from selectolax.lexbor import LexborHTMLParser

    started = time.perf_counter()
    LexborHTMLParser(data.decode())
    return time.perf_counter() - started


async def _neighbour(hostile_in_thread: bool) -> float:
    """Seconds for workspace B's small file while workspace A's hostile one is parsed: the
    product way (a killable child) or in a thread of the worker (the way before)."""
    from parley.knowledge import isolated
    from parley.knowledge.extract import extract

    small = b"# Opening hours\n\nWe open at nine.\n" * 50
    limits = isolated.Limits(LIMIT, 10_000_000, 10_000_000, 4_000_000, 5_000, 300, 50)
    hostile = html_nested()[:500_000]
    if hostile_in_thread:
        a = asyncio.create_task(
            asyncio.to_thread(
                extract, hostile, filename="a.html", content_type=None, max_html_depth=10**7
            )
        )
    else:
        a = asyncio.create_task(
            isolated.extract_chunks(
                hostile, filename="a.html", content_type=None, limits=limits, seconds=30
            )
        )
    await asyncio.sleep(0.5)  # A is parsing
    started = time.perf_counter()
    await isolated.extract_chunks(
        small, filename="b.md", content_type=None, limits=limits, seconds=30
    )
    took = time.perf_counter() - started
    a.cancel()
    with contextlib.suppress(BaseException):  # A's outcome is not what is measured
        await a
    return took


def run(*, quick: bool = False) -> Section:
    section = Section(
        id="P16b",
        title="Ingestion budgets: worst input per format at the upload limit",
        method=(
            "Each input is the worst of its format we know at the 20 MiB upload limit "
            "(generated, seeded), extracted and chunked the way the ingestion job does it: in a "
            "child process with the default budgets (`knowledge.isolated.extract_chunks`, 120 s "
            "each). Time is wall time including the child's start; peak memory is the child's "
            "peak RSS, whether the file was accepted or refused. Baseline for HTML: Lexbor tree "
            "building (no pre-scan, as the code before the budgets ran it) on the probe's input "
            "cut to 200 KB, against the product path on the same bytes. Neighbour rows: "
            "workspace B's small Markdown file while workspace A's hostile HTML (500 KB of "
            "nested `<div>`s, depth limit lifted) is parsed, in a child (now) or in a worker "
            "thread (before); baseline: B alone."
        ),
        command=".venv/bin/python -m bench p16b",
    )
    cases = CASES[:3] if quick else CASES

    async def main() -> None:
        from parley.knowledge import isolated

        await isolated.extract_chunks(  # start the forkserver outside the figures
            b"warm", filename="w.txt", content_type=None,
            limits=isolated.Limits(LIMIT, 256, 200_000, 4_000_000, 5_000, 300, 50), seconds=30,
        )  # fmt: skip
        cut = html_nested()[:200_000]
        old = _old_html_seconds(cut)
        new, outcome, _ = await _measure("x.html", cut, 120)
        section.rows.append(
            Row(
                "HTML nested `<div>`, 200 KB",
                f"{new:.2f} s ({outcome})",
                f"before: {old:.2f} s",
                f"{new / old:.3f}×",
            )
        )
        for fmt, what, make in cases:
            data = make()
            seconds, outcome, peak = await _measure(NAMES[fmt], data, 120)
            section.rows.append(
                Row(
                    f"{fmt}: {what}, {len(data) / 1024 / 1024:.1f} MiB",
                    f"{seconds:.2f} s, peak {peak}",
                    "—",
                    "—",
                    "≤ 120 s (the budget)",
                    seconds <= 120,
                )
            )
            section.notes.append(f"{fmt} ({what}): {outcome}.")
        alone_started = time.perf_counter()
        await isolated.extract_chunks(
            b"# Opening hours\n\nWe open at nine.\n" * 50, filename="b.md", content_type=None,
            limits=isolated.Limits(LIMIT, 256, 200_000, 4_000_000, 5_000, 300, 50), seconds=30,
        )  # fmt: skip
        alone = time.perf_counter() - alone_started
        child = await _neighbour(hostile_in_thread=False)
        thread = await _neighbour(hostile_in_thread=True)
        section.rows.append(
            Row(
                "B's file while A's is parsed (child process)",
                f"{child * 1000:.0f} ms",
                f"B alone {alone * 1000:.0f} ms",
                f"{child / alone:.1f}×",
            )
        )
        section.rows.append(
            Row(
                "B's file while A's is parsed in a worker thread (before)",
                f"{thread * 1000:.0f} ms",
                f"B alone {alone * 1000:.0f} ms",
                f"{thread / alone:.1f}×",
            )
        )

    asyncio.run(main())
    return section
