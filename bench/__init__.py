"""Benchmarks (`make bench` / `python -m bench [p1 p8 …] [--quick]`): each compares against a
baseline measured in the same run on the same machine and writes docs/benchmarks.md."""

import os

# The benchmarks' own numpy work (exact kNN for recall, random vectors) would otherwise leave
# OpenBLAS worker threads spinning for a while after each call, on the two cores the measured
# server needs: P4's hybrid search, which runs its legs on both cores, measured 20 % slower
# right after an exact kNN. Set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
