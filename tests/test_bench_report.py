"""docs/benchmarks.md: a new run rewrites a section's table and keeps what people wrote about
the runs before (a reading lost on re-measuring is history lost)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import report


def test_a_new_run_keeps_the_readings_below_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "benchmarks.md"
    monkeypatch.setattr(report, "REPORT", path)
    first = report.Section("Q1", "Quality", "How.", "python -m bench q1")
    first.rows.append(report.Row("contains gold", "60%"))
    report.write([first, report.Section("P1", "Weight", "How.", "python -m bench p1")])
    text = path.read_text()  # Q1 comes last (P…, then Q…): a person adds a reading below it
    path.write_text(f"{text.rstrip()}\n\n{report.KEPT}\n- **Reading (1 Dec)**: 60 %, first run.\n")
    again = report.Section("Q1", "Quality", "How.", "python -m bench q1")
    again.rows.append(report.Row("contains gold", "65%"))
    report.write([again])
    q1 = path.read_text().split("## Q1")[1]
    assert "| contains gold | 65% |" in q1.split(report.KEPT)[0]
    assert "- **Reading (1 Dec)**: 60 %, first run." in q1
    assert q1.count(report.KEPT) == 1
    assert "## P1 — Weight" in path.read_text()  # a section not re-run stays as it was
