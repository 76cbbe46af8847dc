"""Benchmarks: pytest-benchmark suites (``bench_*.py``) and side-by-side runners."""
