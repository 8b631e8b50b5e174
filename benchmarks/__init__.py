"""Benchmarks: run ``python -m benchmarks`` (see docs/benchmarks.md)."""
