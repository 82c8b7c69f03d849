"""Test feedback: wall time of each PostgreSQL-only test file run alone, PostgreSQL start included.

    uv run python -m bench --only tests [--suite] [--quick]

A PostgreSQL-only file is one under ``tests/postgres/`` (the suite's layout). Each is
run as a developer runs it, ``uv run pytest -q <file>`` in a subprocess (its own PostgreSQL
started by the local_infra plugin, its template database migrated, the file's tests, teardown).
The baseline is the same command on a unit-test file (no servers): the fixed cost of uv,
pytest and the imports. With ``--suite`` the whole suite (``uv run pytest -q``) is timed once.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import REPOSITORY, Harness, Stats, progress
from bench.report import Section, Table, Target, bar_chart, ratio, stats_cells

TARGET_SECONDS = 3.0
BASELINE_FILE = "tests/unit/test_settings_and_envelope.py"
_POSTGRES_START = re.compile(r"started postgres on \S+ in ([0-9.]+) s")


def postgres_only_files(root: Path = REPOSITORY) -> list[Path]:
    """Test files under ``tests/postgres/``: the layout keeps PostgreSQL-only tests there."""
    return [
        path.relative_to(root) for path in sorted((root / "tests" / "postgres").rglob("test_*.py"))
    ]


def _pytest_command() -> list[str]:
    uv = shutil.which("uv")
    return [uv, "run", "pytest"] if uv else [sys.executable, "-m", "pytest"]


@dataclass
class Run:
    seconds: float
    exit_code: int
    postgres_start: float | None
    summary: str
    failures: list[str] = field(default_factory=list)  # pytest's FAILED/ERROR summary lines


def run_pytest(arguments: list[str], timeout: float) -> Run:
    started = time.perf_counter()
    completed = subprocess.run(
        [*_pytest_command(), "-q", "-rfE", *arguments],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.perf_counter() - started
    output = completed.stdout + completed.stderr
    match = _POSTGRES_START.search(output)
    lines = [line for line in output.splitlines() if line.strip()]
    return Run(
        seconds,
        completed.returncode,
        float(match.group(1)) if match else None,
        lines[-1] if lines else "",
        [line for line in lines if line.startswith(("FAILED ", "ERROR "))],
    )


@dataclass
class FeedbackResults:
    files: dict[str, list[Run]] = field(default_factory=dict)
    baseline: list[Run] = field(default_factory=list)
    suite: Run | None = None

    def seconds(self, name: str) -> Stats:
        runs = self.baseline if name == BASELINE_FILE else self.files[name]
        return Stats.of([run.seconds for run in runs])


def measure(harness: Harness, *, quick: bool, repetitions: int, suite: bool) -> FeedbackResults:
    del harness  # every pytest run starts its own servers
    files = postgres_only_files()
    if quick:
        files = files[:3]
    results = FeedbackResults(files={str(f): [] for f in files})
    for repetition in range(1, repetitions + 1):
        results.baseline.append(run_pytest([BASELINE_FILE], timeout=300))
        for path in files:
            run = run_pytest([str(path)], timeout=600)
            results.files[str(path)].append(run)
            state = "ok" if run.exit_code == 0 else f"FAILED ({run.summary})"
            progress(f"tests {repetition}/{repetitions} {path}: {run.seconds:.2f} s, {state}")
            for line in run.failures:
                progress(f"tests: {line}")
    if suite:
        progress("tests: the whole suite (uv run pytest -q), once; this takes minutes")
        results.suite = run_pytest([], timeout=3600)
        progress(f"tests: suite {results.suite.seconds:.0f} s: {results.suite.summary}")
        for line in results.suite.failures:
            progress(f"tests: suite: {line}")
    return results


def section(results: FeedbackResults) -> Section:
    intro = f"""
Wall time of `uv run pytest -q <file>` for each PostgreSQL-only test file (`pytestmark =
pytest.mark.postgres`) run alone in a subprocess: uv, pytest, imports, a fresh PostgreSQL
started by the local_infra plugin, the template database migrated, the file's tests, teardown.
Baseline: the same command on `{BASELINE_FILE}` (no servers), the fixed cost every run pays.
"""
    section_ = Section("tests", "Test feedback", intro)
    baseline = results.seconds(BASELINE_FILE)
    table = Table(["file", "min s", "median s", "max s", "vs baseline", "PostgreSQL start s", "ok"])
    table.rows.append(
        [f"baseline: `{BASELINE_FILE}`", *stats_cells(baseline, 2), ratio(1.0), "-", "yes"]
    )
    slow = []
    failed = []
    for name, runs in results.files.items():
        seconds = results.seconds(name)
        starts = [run.postgres_start for run in runs if run.postgres_start is not None]
        ok = all(run.exit_code == 0 for run in runs)
        if not ok:
            failed.append(name)
        if seconds.median >= TARGET_SECONDS:
            slow.append(name)
        table.rows.append(
            [
                f"`{name}`",
                *stats_cells(seconds, 2),
                ratio(seconds.ratio_to(baseline)),
                f"{Stats.of(starts).median:.2f}" if starts else "-",
                "yes" if ok else "**no**",
            ]
        )
    section_.tables.append(("", table))
    worst = max(results.files, key=lambda n: results.seconds(n).median)
    section_.targets.append(
        Target(
            f"every PostgreSQL-only file alone < {TARGET_SECONDS:.0f} s (slowest shown)",
            f"{results.seconds(worst).median:.2f} s (`{Path(worst).name}`)",
            not slow,
        )
    )
    starts = [r.postgres_start for runs in results.files.values() for r in runs if r.postgres_start]
    medians = sorted(results.seconds(name).median for name in results.files)
    section_.notes.append(
        f"Of a typical file's {medians[len(medians) // 2]:.1f} s (median of the medians), the "
        f"fixed cost of uv, pytest and the imports is {baseline.median:.1f} s (the baseline "
        "row; importing the app alone takes about 1.1 s: FastAPI, SQLAlchemy, pydantic, "
        "redis, aiokafka) and starting PostgreSQL "
        f"{Stats.of(starts).median if starts else float('nan'):.2f} s; the rest is the "
        "template migration and the file's own tests."
    )
    if slow:
        section_.notes.append(
            f"Files at or over {TARGET_SECONDS:.0f} s: " + ", ".join(f"`{n}`" for n in slow) + "."
        )
    if failed:
        section_.notes.append(
            "Files with failing tests in this run (timed all the same): "
            + ", ".join(f"`{n}`" for n in failed)
            + "."
        )
    if results.suite is not None:
        section_.notes.append(
            f"The whole suite (`uv run pytest -q`, once): {results.suite.seconds:.0f} s, "
            f"exit code {results.suite.exit_code}: `{results.suite.summary}`."
            + "".join(f" `{line}`." for line in results.suite.failures)
        )
    else:
        section_.notes.append("The whole suite was not timed (add `--suite`; it takes minutes).")

    def draw(path: Path) -> None:
        names = list(results.files)
        bar_chart(
            path,
            title="Wall time of each PostgreSQL-only test file alone",
            ylabel="seconds",
            labels=["baseline (unit file)", *(Path(n).stem for n in names)],
            series=[("seconds", [baseline, *(results.seconds(n) for n in names)])],
            horizontal_line=(TARGET_SECONDS, "target"),
        )

    section_.plots.append(("test_feedback.png", "Wall time per test file", draw))
    return section_
