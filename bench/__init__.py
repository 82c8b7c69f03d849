"""Benchmarks (run as modules, e.g. ``uv run python -m bench.bench_roster_import``)."""
