"""Run the benchmarks: `python -m bench [p1 p2 p3 p6 p7 p8 p10 p16 q1 …] [--quick]`."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench.report import Section, write

MODULES = {
    "p1": "bench.p1_widget_weight",
    "p2": "bench.p2_ttft_overhead",
    "p3": "bench.p3_throughput",
    "p6": "bench.p6_ingestion",
    "p7": "bench.p7_ingress",
    "p8": "bench.p8_cold_start",
    "p4": "bench.p4_retrieval_latency",
    "p5": "bench.p5_retrieval_quality",
    "p10": "bench.p10_idle_rss",
    "p9": "bench.p9_voice_latency",
    "voice_wer": "bench.voice_quality",
    "p16": "bench.p16_embedded_ingestion",
    "q1": "bench.q1_answer_quality",
    "p11": "bench.p11_inbox_list",
    "p12": "bench.p12_operator_reply",
    "p16b": "bench.p16b_ingest_budgets",
    "p15": "bench.p15_noisy_neighbour",
    "p13": "bench.p13_console_render",
    "p14": "bench.p14_analytics",
    "q3": "bench.q3_gap_grouping",
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    args = parser.parse_args(argv)
    names = [n.lower() for n in args.names] or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    sections: list[Section] = []
    for name in names:
        started = time.monotonic()
        print(f"== {name} ...", flush=True)
        module = importlib.import_module(MODULES[name])
        section: Section = module.run(quick=args.quick)
        sections.append(section)
        print(section.markdown(), flush=True)
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    path = write(sections)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
