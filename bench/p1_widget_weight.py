"""P1 — widget weight: gzipped bytes of the loader and of loader + chat UI, as served."""

from __future__ import annotations

from bench.report import Row, Section
from parley.widget.assets import weights

ANCHORS = {"Chatwoot widget": 300 * 1024, "Flowise embed": 284 * 1024, "Typebot embed": 196 * 1024}


def run(quick: bool = False) -> Section:
    w = weights()
    loader, total = w["parley.js"], w["parley.js"] + w["ui.js"]
    rows = [
        Row(
            "loader (parley.js), gzip -9",
            f"{loader} B",
            "Chatwoot loader budget 40 KB",
            f"{loader / (40 * 1024):.3f}×",
            "≤ 2048 B",
            loader <= 2048,
        ),
        Row(
            "loader + chat UI, gzip -9",
            f"{total} B",
            "",
            "",
            "≤ 10240 B (goal 8192 B)",
            total <= 10240,
        ),
    ]
    voice = w["voice.js"]
    rows.append(
        Row(
            "voice module (voice.js, loaded on first press), gzip -9",
            f"{voice} B",
            "",
            "",
            "≤ 6144 B",
            voice <= 6144,
        )
    )
    for name, size in ANCHORS.items():
        rows.append(
            Row(f"vs {name}", f"{total} B", f"{size // 1024} KB", f"{total / size:.3f}×", "", None)
        )
    return Section(
        "P1",
        "Widget weight",
        "Sizes of the files exactly as `/widget/v1/*.js` serves them (rjsmin-minified, gzip level "
        "9), read from the running code; anchors are the published sizes of comparable widgets.",
        ".venv/bin/python -m bench p1",
        rows,
    )
