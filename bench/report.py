"""Benchmark sections and the markdown report (sections not re-run this time are kept)."""

from __future__ import annotations

import os
import platform
import re
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass
class Row:
    metric: str
    measured: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    ok: bool | None = None


@dataclass
class Section:
    id: str
    title: str
    method: str
    command: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [
            f"## {self.id} — {self.title}",
            "",
            self.method,
            "",
            f"Command: `{self.command}`",
            "",
        ]
        lines += [
            "| metric | measured | baseline | ratio | target | result |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            verdict = {True: "pass", False: "**fail**", None: "info"}[r.ok]
            lines.append(
                f"| {r.metric} | {r.measured} | {r.baseline} | {r.ratio} | {r.target} | {verdict} |"
            )
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _machine() -> str:
    mem = ""
    try:
        kb = int(
            next(
                line
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            ).split()[1]
        )
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    system = f"{platform.system()} {platform.machine()}"
    return f"{os.cpu_count()} cores{mem}, Python {platform.python_version()}, {system}"


def _order(key: str) -> tuple[int, int, str]:
    number = re.match(r"\d+", key[1:])
    return ("PQR".index(key[0]), int(number.group()) if number else 0, key)


KEPT = "<!-- readings: written by hand, kept when the section is measured again -->"
"""Below this line a section holds what people wrote about its runs (a reading per run, the
runs before); a new run rewrites the table and notes above it and keeps the rest."""


def write(sections: list[Section]) -> Path:
    existing: dict[str, str] = {}
    if REPORT.exists():
        for block in re.split(r"(?m)^(?=## [PQR]\d+)", REPORT.read_text()):
            m = re.match(r"## ([PQR]\d+[a-z]?)", block)
            if m:
                existing[m.group(1)] = block.rstrip() + "\n"
    for s in sections:
        kept = existing.get(s.id, "").partition(KEPT)[2]
        existing[s.id] = s.markdown() + (f"\n{KEPT}{kept}" if kept else "")
    header = [
        "# Benchmarks",
        "",
        "Each figure is measured against a baseline run in the same process on the same machine, "
        "so ratios stay meaningful on noisy shared hardware. Regenerate with `make bench` "
        "(or `.venv/bin/python -m bench p8 p10` for some of them; `--quick` for a smoke run).",
        "",
        f"Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {_machine()}.",
        "",
    ]
    ordered = sorted(existing, key=_order)  # P1…, then Q1… (quality), then R1… (resilience)
    REPORT.write_text("\n".join(header) + "\n" + "\n".join(existing[k] for k in ordered))
    return REPORT
