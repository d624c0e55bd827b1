"""Benchmarks (`make bench` / `python -m bench [p1 p8 …] [--quick]`): each compares against a
baseline measured in the same run on the same machine and writes docs/benchmarks.md."""
