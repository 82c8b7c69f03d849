"""Test feedback: wall time of each test file run alone, server start included.

    ./dev bench --only tests [--suite] [--quick]

Each PostgreSQL-only file (under ``tests/postgres/``) and each unit-test file (under
``tests/unit/``) is run as a developer runs it, ``uv run pytest -q <file>`` in a subprocess:
uv, pytest, the imports, for PostgreSQL a fresh server started by the local_infra plugin and the
template database created (from the cached schema dump, see ``tests/databases.py``), the file's
tests, teardown. The baseline is bare pytest: one empty test in a scratch directory (no
conftest, no plugins, no uv), the cost every run pays before the project's own. In a full run
(or with ``--suite``) the whole suite is timed too, run as ``./dev test`` runs it (its pytest
options read from the ``dev`` script: two workers).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import REPOSITORY, Harness, Stats, progress
from bench.report import Section, Table, Target, bar_chart, ratio, stats_cells

POSTGRES_TARGET_SECONDS = 2.5
UNIT_TARGET_SECONDS = 1.0
SUITE_TARGET_SECONDS = 120.0
BASELINE = "baseline: bare pytest, one empty test"
_POSTGRES_START = re.compile(r"started postgres on \S+ in ([0-9.]+) s")


def files_of(kind: str, root: Path = REPOSITORY) -> list[Path]:
    """Test files under ``tests/<kind>/`` (the suite's layout keeps each tier there)."""
    return [path.relative_to(root) for path in sorted((root / "tests" / kind).rglob("test_*.py"))]


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


def suite_options() -> list[str]:
    """The options ``./dev test`` gives pytest (its workers), read from the script itself."""
    script = (REPOSITORY / "dev").read_text()
    match = re.search(r'^\s*exec "\$\{UV\[@\]\}" run pytest (.*) "\$@"$', script, re.MULTILINE)
    if match is None:
        raise RuntimeError("./dev test's pytest command not found in the dev script")
    return shlex.split(match.group(1))


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
    files: dict[str, list[Run]] = field(default_factory=dict)  # PostgreSQL-only and unit
    baseline: list[Run] = field(default_factory=list)
    suite: list[Run] = field(default_factory=list)

    def seconds(self, name: str) -> Stats:
        runs = self.baseline if name == BASELINE else self.files[name]
        return Stats.of([run.seconds for run in runs])

    def of_kind(self, kind: str) -> list[str]:
        return [name for name in self.files if name.startswith(f"tests/{kind}/")]

    def slowest(self, kind: str) -> str:
        return max(self.of_kind(kind), key=lambda name: self.seconds(name).median)


def _bare_pytest(scratch: Path) -> Run:
    """One empty test in a directory of its own: what pytest costs before the project's part."""
    (scratch / "test_empty.py").write_text("def test_empty() -> None:\n    pass\n")
    # Without the plugins other packages install (schemathesis, hypothesis, anyio: ~1.5 s of
    # imports that the project's own configuration turns off too).
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_empty.py"],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(time.perf_counter() - started, completed.returncode, None, "")


def measure(harness: Harness, *, quick: bool, repetitions: int, suite: bool) -> FeedbackResults:
    postgres, unit = files_of("postgres"), files_of("unit")
    if quick:
        postgres, unit = postgres[:3], unit[:2]
    files = [*postgres, *unit]
    results = FeedbackResults(files={str(f): [] for f in files})
    for repetition in range(1, repetitions + 1):
        results.baseline.append(_bare_pytest(harness.scratch))
        for path in files:
            run = run_pytest([str(path)], timeout=600)
            results.files[str(path)].append(run)
            state = "ok" if run.exit_code == 0 else f"FAILED ({run.summary})"
            progress(f"tests {repetition}/{repetitions} {path}: {run.seconds:.2f} s, {state}")
            for line in run.failures:
                progress(f"tests: {line}")
    for repetition in range(1, (repetitions if suite else 0) + 1):
        progress(f"tests: the whole suite (as ./dev test runs it) {repetition}/{repetitions}")
        run = run_pytest(suite_options(), timeout=3600)
        results.suite.append(run)
        progress(f"tests: suite {run.seconds:.0f} s: {run.summary}")
        for line in run.failures:
            progress(f"tests: suite: {line}")
    return results


def section(results: FeedbackResults) -> Section:
    intro = """
Wall time of `uv run pytest -q <file>` for each PostgreSQL-only file (`tests/postgres/`) and
each unit-test file (`tests/unit/`) run alone in a subprocess: uv, pytest, the imports, for
PostgreSQL a fresh server started by the local_infra plugin and the template database created
from the cached schema dump, the file's tests, teardown. Baseline: bare pytest running one empty
test in a scratch directory (no conftest, no plugins, no uv), the cost no change to the project
can remove.
"""
    section_ = Section("tests", "Test feedback", intro)
    baseline = results.seconds(BASELINE)
    table = Table(["file", "min s", "median s", "max s", "vs baseline", "PostgreSQL start s", "ok"])
    table.rows.append([BASELINE, *stats_cells(baseline, 2), ratio(1.0), "-", "yes"])
    failed = []
    for name, runs in results.files.items():
        seconds = results.seconds(name)
        starts = [run.postgres_start for run in runs if run.postgres_start is not None]
        ok = all(run.exit_code == 0 for run in runs)
        if not ok:
            failed.append(name)
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
    for kind, limit in (("postgres", POSTGRES_TARGET_SECONDS), ("unit", UNIT_TARGET_SECONDS)):
        slowest = results.slowest(kind)
        over = [n for n in results.of_kind(kind) if results.seconds(n).median > limit]
        section_.targets.append(
            Target(
                f"each {kind} test file alone <= {limit} s (slowest: `{Path(slowest).name}`; "
                f"{len(over)} of {len(results.of_kind(kind))} over)",
                results.seconds(slowest),
                "s",
                baseline=baseline,
                at_most=limit,
                digits=2,
            )
        )
        if over:
            section_.notes.append(
                f"{kind} files over {limit} s: " + ", ".join(f"`{n}`" for n in over) + "."
            )
    if results.suite:
        section_.targets.append(
            Target(
                f"the whole suite <= {SUITE_TARGET_SECONDS:.0f} s",
                Stats.of([run.seconds for run in results.suite]),
                "s",
                at_most=SUITE_TARGET_SECONDS,
            )
        )
        command = shlex.join(suite_options())
        section_.notes.append(
            f"The whole suite as `./dev test` runs it (`uv run pytest {command}`): "
            + "; ".join(
                f"{run.seconds:.0f} s, exit code {run.exit_code}: `{run.summary}`"
                for run in results.suite
            )
            + "."
            + "".join(f" `{line}`." for run in results.suite for line in run.failures)
        )
    else:
        section_.notes.append("The whole suite was not timed (a partial run; add `--suite`).")
    if failed:
        section_.notes.append(
            "Files with failing tests in this run (timed all the same): "
            + ", ".join(f"`{n}`" for n in failed)
            + "."
        )

    def draw(path: Path) -> None:
        names = results.of_kind("postgres")
        bar_chart(
            path,
            title="Wall time of each PostgreSQL-only test file alone",
            ylabel="seconds",
            labels=["baseline (bare pytest)", *(Path(n).stem for n in names)],
            series=[("seconds", [baseline, *(results.seconds(n) for n in names)])],
            horizontal_line=(POSTGRES_TARGET_SECONDS, "target"),
        )

    section_.plots.append(("test_feedback.png", "Wall time per test file", draw))
    return section_
