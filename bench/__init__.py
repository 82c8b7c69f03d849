"""Benchmarks: ``./dev bench`` (= ``uv run --group bench python -m bench``) runs them all and
writes ``docs/benchmarks.md``; see ``bench/README.md``."""
