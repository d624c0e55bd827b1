"""P8 — cold start: `parley serve` with the embedded PostgreSQL stopped, to /readyz = 200."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench.procs import baseline_serve, parley_serve, stop_embedded_pg
from bench.report import Row, Section, median


def run(quick: bool = False) -> Section:
    n = 2 if quick else 5
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-p8-"))
    try:
        with parley_serve(data_dir) as first:  # initdb + first migration
            first_start = first.ready_s
        stop_embedded_pg(data_dir)
        cold: list[float] = []
        for _ in range(n):
            with parley_serve(data_dir) as s:
                cold.append(s.ready_s)
            stop_embedded_pg(data_dir)
        base: list[float] = []
        for _ in range(n):
            with baseline_serve() as b:
                base.append(b.ready_s)
    finally:
        stop_embedded_pg(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    med, base_med = median(cold), median(base)
    return Section(
        "P8",
        "Cold start to ready",
        f"{n} starts of `parley serve` on a data dir whose embedded PostgreSQL is stopped "
        "(PostgreSQL start + migration check + app start), timed from process start to the "
        "first 200 from `/readyz` (polled every 20 ms). Baseline: a bare Starlette app under "
        "uvicorn to its first 200 — the share of the time that is Python and uvicorn themselves.",
        ".venv/bin/python -m bench p8",
        [
            Row(
                "cold start, median",
                f"{med:.2f} s",
                f"{base_med:.2f} s",
                f"{med / base_med:.1f}×",
                "≤ 5 s",
                med <= 5,
            ),
            Row(
                "cold start, max",
                f"{max(cold):.2f} s",
                f"{max(base):.2f} s",
                "",
                "≤ 5 s",
                max(cold) <= 5,
            ),
            Row("first start (initdb + migrations)", f"{first_start:.2f} s", "", "", "", None),
        ],
    )
