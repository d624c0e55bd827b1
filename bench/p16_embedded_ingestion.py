"""P16 (first half) — ingestion with local embeddings, next to keyword-only on the same corpus.

The corpus is Parley's own `docs/` (what the demo indexes), uploaded as Markdown and indexed
by the product's job worker at its production concurrency. Runs on one fresh database, each
in its own workspace: keyword-only (`PARLEY_EMBEDDINGS=none`); local
embeddings with each job calling the model on its own (the bare `LocalEmbedder`, 32 texts a
call); and as configured now (`CoalescingEmbedder`: concurrent jobs' chunks merged into shared
batches of up to 32). In both embedding runs a job embeds its chunks before its transaction.
The model is loaded once before the timed runs; its load time is shown apart (a server pays
it once, on the first document or query, never at start-up). Last, the model alone embeds the
same chunks (heading + text, 32 a call, no database, no jobs): what an ingestion path could
at best add to keyword-only, so the path's own overhead is the embedding run's time minus
keyword-only's minus the model's.
"""

from __future__ import annotations

import asyncio
import os
import time

from bench.demo_corpus import bench_runtime, pages, ready_sources, run_worker_until_idle, upload
from bench.kb import bench_database
from bench.report import Row, Section
from parley.knowledge.embeddings import CACHE_KEY
from parley.knowledge.vectors import chunk_text

COMMAND = ".venv/bin/python -m bench p16"
NOTES = [
    (
        "Compare the two embedding variants only within one run, and read a difference of a "
        "few tenths as this shared machine's noise (the runs go A B B A to spread the load's "
        "drift over both): on a CPU the model's time is per token, so merging jobs' calls "
        "cannot raise throughput much; it keeps a chat's query ahead of queued documents. "
        "Embedding before the job's transaction is what lets jobs run side by side."
    ),
]


async def _measure(quick: bool) -> Section:
    from parley.knowledge.embeddings.batching import CoalescingEmbedder
    from parley.knowledge.embeddings.local import LocalEmbedder

    rows: list[Row] = []
    notes: list[str] = []
    load_at_start = os.getloadavg()[0]
    async with bench_database(pool_size=30) as bench:
        model = LocalEmbedder("all-MiniLM-L6-v2")
        started = time.perf_counter()
        await model.warm()
        load = time.perf_counter() - started
        variants = {
            "keyword-only": None,
            "local embeddings, each job alone": model,
            "local embeddings, batched across jobs": CoalescingEmbedder(model),
        }
        # The two embedding variants run A B B A (one pass with --quick), so the load of the
        # shared machine drifting during the run falls on both alike.
        a, b = list(variants)[1:]
        order = ["keyword-only", a, b] if quick else ["keyword-only", a, b, b, a]
        seconds_of: dict[str, float] = {}
        docs_of: dict[str, int] = {}
        runs_of: dict[str, int] = {}
        keyword_tenant = None
        for turn, label in enumerate(order):
            embedder = variants[label]
            runtime = bench_runtime(
                bench, parley_embeddings="none" if embedder is None else "local"
            )
            if embedder is not None:
                runtime.clients[CACHE_KEY] = embedder
            tenant = await bench.tenant(f"p16-{turn}")
            if embedder is None:
                keyword_tenant = tenant
            docs = await upload(runtime, tenant)
            seconds = await run_worker_until_idle(runtime)
            ready, chunks, vectors = await ready_sources(bench, tenant)
            assert ready == docs, f"{label}: {ready} of {docs} documents ready"
            assert (vectors == chunks) if embedder is not None else vectors == 0
            seconds_of[label] = seconds_of.get(label, 0.0) + seconds
            docs_of[label] = docs_of.get(label, 0) + docs
            runs_of[label] = runs_of.get(label, 0) + 1
            notes.append(
                f"run {turn + 1}, {label}: {docs} documents, {chunks} chunks, {vectors} vectors "
                f"in {seconds:.1f} s"
            )
        rates = {label: docs_of[label] / seconds_of[label] for label in variants}
        base = rates["keyword-only"]
        for label, rate in rates.items():
            rows.append(
                Row(
                    metric=f"documents/s, {label}",
                    measured=f"{rate:.1f}",
                    baseline=f"{base:.1f} (keyword-only)",
                    ratio=f"{rate / base:.2f}",
                    target="reported",
                )
            )
        before = rates["local embeddings, each job alone"]
        now = rates["local embeddings, batched across jobs"]
        rows.append(
            Row(
                metric="batched across jobs vs each job alone",
                measured=f"{now:.1f}/s",
                baseline=f"{before:.1f}/s",
                ratio=f"{now / before:.2f}",
                target="≥ 1",
                ok=now >= before * 0.95,
            )
        )
        # The model alone on the same chunks: the least embedding can cost.
        import asyncpg

        conn = await asyncpg.connect(bench.admin_dsn)
        try:
            chunks = await conn.fetch(
                "SELECT coalesce(heading, '') AS heading, text FROM kb_chunks"
                " WHERE tenant_id = $1 ORDER BY source_id, ordinal",
                keyword_tenant,
            )
        finally:
            await conn.close()
        texts = [chunk_text(r["heading"], r["text"]) for r in chunks]
        started = time.perf_counter()
        await model.embed(texts)
        alone = time.perf_counter() - started
        keyword_s = seconds_of["keyword-only"] / runs_of["keyword-only"]
        for label in list(variants)[1:]:
            per_run = seconds_of[label] / runs_of[label]
            overhead = per_run - keyword_s - alone
            rows.append(
                Row(
                    metric=f"path overhead, {label} (run − keyword-only − model alone)",
                    measured=f"{overhead:.1f} s",
                    baseline=f"{alone:.1f} s (model alone, {len(texts)} chunks)",
                    ratio=f"{per_run / (keyword_s + alone):.2f}",
                    target="reported",
                )
            )
        notes.append(
            f"The model alone embedded the {len(texts)} chunks in {alone:.1f} s "
            f"({len(texts) / alone:.1f} chunks/s); ratio = a run's time over keyword-only's "
            "plus the model's (1.00: the path adds nothing to the model's own time)."
        )
        load1, load5, load15 = os.getloadavg()
        notes.append(
            f"Load average (1 min) {load_at_start:.1f} at the start; at the end {load1:.1f} / "
            f"{load5:.1f} / {load15:.1f} (1 / 5 / 15 min), on {os.cpu_count()} cores shared with "
            "other engineers' work."
        )
        notes += NOTES
        notes.append(
            f"Corpus: the {len(pages())} pages of docs/ the demo indexes, in each run. Model "
            f"load (first use, not in the rates): {load:.1f} s."
        )
    return Section(
        id="P16",
        title="Ingestion with local embeddings (documents/s)",
        method=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        command=COMMAND,
        rows=rows,
        notes=notes,
    )


def run(quick: bool = False) -> Section:
    return asyncio.run(_measure(quick))
