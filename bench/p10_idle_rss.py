"""P10 — one API process: idle resident memory after start-up and a few requests."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from bench.procs import baseline_serve, parley_serve, stop_embedded_pg
from bench.report import Row, Section


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def _warm(base: str, path: str) -> None:
    for _ in range(20):
        httpx.get(base + path, timeout=5)
    time.sleep(2)


def run(quick: bool = False) -> Section:
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-p10-"))
    try:
        with parley_serve(data_dir) as s:
            _warm(s.base, "/readyz")
            rss = _rss(s.proc.pid)
            pg = sum(
                int(p.memory_info().rss)
                for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] == "postgres"
                and str(data_dir) in " ".join(p.info["cmdline"] or [])
            )
        with baseline_serve() as b:
            _warm(b.base, "/healthz")
            base_rss = _rss(b.proc.pid)
    finally:
        stop_embedded_pg(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    mb = 1024 * 1024
    return Section(
        "P10",
        "Idle memory of one API process",
        "RSS of the `parley serve` process (API and its in-process job worker; the embedded "
        "PostgreSQL runs in separate processes, reported for information) after start-up and 20 "
        "readiness checks, against a bare Starlette app under uvicorn.",
        ".venv/bin/python -m bench p10",
        [
            Row(
                "API process idle RSS",
                f"{rss / mb:.0f} MB",
                f"{base_rss / mb:.0f} MB",
                f"{rss / base_rss:.1f}×",
                "≤ 200 MB",
                rss <= 200 * mb,
            ),
            Row(
                "embedded PostgreSQL RSS (all its processes)", f"{pg / mb:.0f} MB", "", "", "", None
            ),
            Row(
                "5,000 concurrent SSE streams, RSS per stream",
                "not measured yet",
                "",
                "",
                "≤ 20 KB",
                None,
            ),
        ],
    )
