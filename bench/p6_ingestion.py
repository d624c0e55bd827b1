"""P6 — ingestion throughput: extract + clean + chunk a long PDF, in pages per second."""

from __future__ import annotations

import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.report import Row, Section

WORKERS = 2  # the target is stated for 2 cores: one ingestion job per core
_WORDS = (
    "the of and to a in is that for it as with on be by this are or from at an was which "
    "customer account invoice payment refund delivery shipment warehouse subscription plan "
    "support request ticket response agreement service level availability maintenance "
    "configuration authentication authorisation encryption retention compliance policy "
    "procedure employee manager department responsibility approval expense travel budget "
    "quarterly annual report analysis performance improvement requirement specification "
    "international notwithstanding interoperability documentation infrastructure 2026 14 30"
)
VOCABULARY = _WORDS.split()


def _prose(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = [rng.choice(VOCABULARY) for _ in range(rng.randint(8, 28))]
        if rng.random() < 0.3:
            words.insert(rng.randint(1, len(words) - 1), "(see section 4.2),")
        out.append(words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice("....?;"))
    return " ".join(out).replace(";", ".")


def make_pdf(pages: int, seed: int = 6) -> bytes:
    """A report-like PDF: chapters every 10 pages (bookmarked), ~450 words of prose a page."""
    from fpdf import FPDF

    rng = random.Random(seed)
    pdf = FPDF()
    pdf.set_title("Operations handbook")
    pdf.set_auto_page_break(auto=False)
    for number in range(pages):
        pdf.add_page()
        if number % 10 == 0:
            title = f"Chapter {number // 10 + 1}: {rng.choice(VOCABULARY).capitalize()}"
            pdf.start_section(title, level=0)
            pdf.set_font("Helvetica", "B", size=15)
            pdf.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=10)
        text = "\n".join(_prose(rng, rng.randint(3, 6)) for _ in range(4))
        pdf.multi_cell(0, 5, text, max_line_height=5)
        pdf.set_y(-15)
        pdf.cell(0, 10, f"Page {number + 1}", align="C")
    return bytes(pdf.output())


def _ingest(path: str) -> tuple[int, int, float, float]:
    """In a worker: the pipeline as a job runs it. Returns pages, chunks, extract s, chunk s."""
    from parley.knowledge.chunking import chunk
    from parley.knowledge.extract import extract

    data = Path(path).read_bytes()
    started = time.perf_counter()
    document = extract(data, filename="handbook.pdf", content_type="application/pdf")
    extracted = time.perf_counter()
    chunks = chunk(document)
    done = time.perf_counter()
    return document.page_count or 0, len(chunks), extracted - started, done - extracted


def _raw_pdfium(path: str) -> tuple[int, int, float, float]:
    """Baseline: PDFium's text extraction alone, no cleaning, structure or chunking."""
    import pypdfium2 as pdfium

    data = Path(path).read_bytes()
    started = time.perf_counter()
    pdf = pdfium.PdfDocument(data)
    pages = len(pdf)
    for index in range(pages):
        page = pdf[index]
        textpage = page.get_textpage()
        textpage.get_text_range()
        textpage.close()
        page.close()
    pdf.close()
    return pages, 0, time.perf_counter() - started, 0.0


def _round(
    pool: multiprocessing.pool.Pool,
    fn: Callable[[str], tuple[int, int, float, float]],
    path: str,
    jobs: int,
) -> tuple[float, list[tuple[int, int, float, float]]]:
    started = time.perf_counter()
    results = pool.map(fn, [path] * jobs, chunksize=1)
    return time.perf_counter() - started, results


async def _pipeline(pdf: bytes, pages: int, rounds: int) -> tuple[float, float]:
    """The product's own ingestion job (`knowledge.ingest`: load the original from storage,
    extract, clean, chunk, store the chunks, write the BM25 postings and statistics, swap the
    version in) on a real embedded PostgreSQL, one job after another. Returns the median
    pages/s of the whole job and of the database part alone."""
    import asyncio
    import uuid

    from bench.kb import bench_database
    from parley.kit.db import tenant_session
    from parley.kit.jobs import JobContext
    from parley.knowledge import ingest
    from parley.knowledge.storage import key_for, storage_for

    whole: list[float] = []
    db_part: list[float] = []
    async with bench_database() as bench:
        runtime = bench.runtime(parley_embeddings="none")
        store = storage_for(runtime)
        tenant = await bench.tenant("P6 ingestion")
        for _ in range(rounds):
            source_id, job_id = uuid.uuid4(), uuid.uuid4()
            key = key_for(tenant, source_id)
            await store.put(key, pdf)
            async with tenant_session(bench.db, tenant) as s:
                raw = await s.connection()
                conn = (await raw.get_raw_connection()).driver_connection
                assert conn is not None
                await conn.execute(
                    "INSERT INTO kb_sources (tenant_id, id, type, title, filename, "
                    "content_type, size_bytes, storage_key) VALUES "
                    "($1, $2, 'file', 'handbook.pdf', 'handbook.pdf', 'application/pdf', $3, $4)",
                    tenant,
                    source_id,
                    len(pdf),
                    key,
                )
                await conn.execute(
                    "INSERT INTO kb_jobs (tenant_id, id, source_id, index_version) "
                    "VALUES ($1, $2, $3, 1)",
                    tenant,
                    job_id,
                    source_id,
                )
            ctx = JobContext(
                db=bench.db,
                job_id=0,
                entrypoint="knowledge.ingest",
                attempt=0,
                payload={"tenant_id": str(tenant), "job_id": str(job_id)},
                runtime_=runtime,
                max_attempts=1,
            )
            started = time.perf_counter()
            await ingest.run(ctx)
            elapsed = time.perf_counter() - started
            async with tenant_session(bench.db, tenant) as s:
                raw = await s.connection()
                conn = (await raw.get_raw_connection()).driver_connection
                assert conn is not None
                status = await conn.fetchval(
                    "SELECT status FROM kb_jobs WHERE tenant_id = $1 AND id = $2", tenant, job_id
                )
                assert status == "succeeded", status
            whole.append(pages / elapsed)
            # The database part: re-index the stored chunks of this version (postings, terms,
            # statistics) without extraction, as a restore does.
            async with tenant_session(bench.db, tenant) as s:
                from parley.knowledge import bm25

                t0 = time.perf_counter()
                await bm25.drop_version(s, tenant, source_id, 1)
                await bm25.index_version(s, tenant, source_id, 1, cfg="english")
                db_part.append(pages / (time.perf_counter() - t0))
            await asyncio.sleep(0)
    return statistics.median(whole), statistics.median(db_part)


def run(quick: bool = False) -> Section:
    load = os.getloadavg()[0]
    pages = 50 if quick else 200
    rounds = 2 if quick else 5
    with tempfile.TemporaryDirectory(prefix="parley-bench-p6-") as tmp:
        path = str(Path(tmp) / "handbook.pdf")
        Path(path).write_bytes(make_pdf(pages))
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(WORKERS) as pool:
            _round(pool, _ingest, path, WORKERS)  # warm-up: imports, PDFium initialisation
            _round(pool, _raw_pdfium, path, WORKERS)
            ours: list[float] = []
            base: list[float] = []
            single: list[float] = []
            extract_s: list[float] = []
            chunk_s: list[float] = []
            chunks_per_doc = 0
            for _ in range(rounds):  # alternate so drift on a shared machine hits both alike
                wall, results = _round(pool, _ingest, path, WORKERS)
                ours.append(WORKERS * pages / wall)
                extract_s += [r[2] for r in results]
                chunk_s += [r[3] for r in results]
                chunks_per_doc = results[0][1]
                wall, _ = _round(pool, _raw_pdfium, path, WORKERS)
                base.append(WORKERS * pages / wall)
                wall, _ = _round(pool, _ingest, path, 1)
                single.append(pages / wall)
        pdf_bytes = Path(path).read_bytes()
    import asyncio

    job_rate, index_rate = asyncio.run(_pipeline(pdf_bytes, pages, 2 if quick else 3))
    rate, base_rate = statistics.median(ours), statistics.median(base)
    one = statistics.median(single)
    ext, chk = statistics.median(extract_s), statistics.median(chunk_s)
    return Section(
        "P6",
        "Ingestion throughput (extract + clean + chunk + keyword index)",
        f"A generated {pages}-page PDF (prose, a bookmarked chapter every 10 pages, ~450 words "
        f"a page) ingested by {WORKERS} worker processes at once, one document each, as two "
        "ingestion jobs on 2 cores would: `extract()` (PDFium text, de-hyphenation, paragraph "
        "rebuild, cleaning) then `chunk()` (300 tokens, 50 overlap). Pages/s = pages of all "
        f"documents / wall time, median of {rounds} rounds. Baseline, alternating in the same "
        "pool: PDFium's raw text extraction of the same file, nothing else.",
        ".venv/bin/python -m bench p6",
        [
            Row(
                f"extract + chunk, {WORKERS} processes",
                f"{rate:.0f} pages/s",
                f"raw PDFium {base_rate:.0f} pages/s",
                f"{rate / base_rate:.2f}×",
                "≥ 100 pages/s",
                rate >= 100,
            ),
            Row(
                "whole ingestion job (+ BM25 index in PostgreSQL), 1 job",
                f"{job_rate:.0f} pages/s",
                f"raw PDFium {base_rate / WORKERS:.0f} pages/s per process",
                f"{job_rate / (base_rate / WORKERS):.2f}×",
                "≥ 100 pages/s",
                job_rate >= 100,
            ),
            Row("BM25 index write alone", f"{index_rate:.0f} pages/s", "", "", "", None),
            Row("extract + chunk, 1 process", f"{one:.0f} pages/s", "", "", "", None),
            Row(
                "time per page: extract / chunk",
                f"{1000 * ext / pages:.2f} ms / {1000 * chk / pages:.2f} ms",
                "",
                "",
                "",
                None,
            ),
            Row("chunks per document", f"{chunks_per_doc}", "", "", "", None),
        ],
        notes=[
            f"Load average when the run started: {load:.1f} on {os.cpu_count()} cores (the "
            "machine is shared), so two processes may not get two whole cores; the raw PDFium "
            "baseline runs under the same load.",
            "The whole-job row runs the product's `knowledge.ingest` job end to end on an embedded "
            "PostgreSQL (original loaded from local storage, chunks stored, BM25 postings, "
            "document frequencies and corpus statistics written, version swapped in, no "
            "embeddings), one job at a time in one process; the index row re-writes the same "
            "chunks' postings alone.",
        ],
    )
