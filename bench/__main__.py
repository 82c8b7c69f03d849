"""Run every benchmark and write the report: ``./dev bench`` (= ``uv run python -m bench``).

Not part of the test command: a full run takes about 25 minutes on the 2-core machines.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench import feedback, http_api, ingestion_e2e, retention, review, roster, startup
from bench.harness import REPOSITORY, Harness, Stats, progress
from bench.report import (
    TARGET_COLUMNS,
    Section,
    Table,
    Target,
    bar_chart,
    ratio,
    stats_cells,
    write_report,
)

DEFAULT_OUTPUT = REPOSITORY / "docs" / "benchmarks.md"
SCRATCH_OUTPUT = REPOSITORY / ".infra" / "bench" / "benchmarks.md"
PROFILE_FINDINGS = Path(__file__).with_name("profile_findings.md")

ORDER = ("ingestion", "http", "roster", "review", "retention", "tests", "startup", "memory")
DESCRIPTIONS = {
    "ingestion": "essays/s from Kafka to committed rows in the service process, vs raw "
    "asyncpg INSERT/unnest/COPY; empty table and 1,000,000 rows",
    "http": "req/s and p50/p95/p99 of every GET route (and a POST) of the service process "
    "under wrk, vs a bare FastAPI endpoint; page latency at depth of a 50,000-student list",
    "roster": "students/s of a 20,000-row CSV import vs raw COPY",
    "review": "batches of 30 confirmed per second through the HTTP API vs raw SQL",
    "tests": "wall time of each PostgreSQL-only and unit test file alone, and of the whole "
    "suite (a full run, or --suite)",
    "startup": "seconds from process start to /healthz 200 with the servers up, vs a bare "
    "FastAPI app's start",
    "memory": "peak RSS of the service process during ingestion and http (runs both)",
    "retention": "essays/s of ingestion while the retention worker deletes a backlog of old "
    "rows, vs with nothing to delete",
}


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(
        textwrap.fill(
            DESCRIPTIONS[name], width=79, initial_indent=f"  {name:10} ", subsequent_indent=" " * 13
        )
        for name in ORDER
    )
    parser = argparse.ArgumentParser(
        prog="./dev bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Run the benchmarks of the Class Management Service and write a Markdown report "
            "with PNG plots. Servers (PostgreSQL, Redis, Kafka) are started for the run with "
            "local_infra and stopped at the end, unless CLASS_MANAGEMENT_SERVICE_DATABASE_URL / "
            "_REDIS_URL / _KAFKA_BOOTSTRAP_SERVERS name running ones. Every figure is min / "
            "median / max over the repetitions next to a baseline measured in the same run.",
            width=79,
        ),
        epilog=f"benchmarks:\n{listing}\n\n"
        + textwrap.fill(
            "A full run takes about 25 minutes (8 of them the whole test suite, three "
            "times) and writes docs/benchmarks.md and "
            "docs/benchmarks/*.png. With --quick or --only the report goes to "
            ".infra/bench/benchmarks.md instead (unless --output is given), so a smoke run "
            "never overwrites the committed one. The HTTP benchmark needs wrk (installed from "
            "Debian with apt-get when running as root).",
            width=79,
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and short durations (a smoke run of a minute or two)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this benchmark (repeatable, or comma-separated); see the list below",
    )
    parser.add_argument(
        "--suite",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time the whole test suite too, once per repetition (minutes each); on by default "
        "in a full run, off with --quick or --only",
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        default=3,
        metavar="N",
        help="repetitions of every measurement (default 3, at least 3)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        metavar="S",
        help="wrk duration per HTTP route and repetition (default 30, 2 with --quick)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help="the Markdown report (plots go to a folder named like it, without .md)",
    )
    return parser


def selected(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    if not arguments.only:
        return list(ORDER)
    names = {name.strip() for value in arguments.only for name in value.split(",") if name}
    unknown = names - set(ORDER)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(ORDER)}")
    if "memory" in names:
        names |= {"ingestion", "http"}
    return [name for name in ORDER if name in names]


def memory_section(
    ingestion: ingestion_e2e.IngestionResults | None, http: http_api.HttpResults | None
) -> Section:
    intro = """
Peak resident set size (VmHWM from `/proc/<pid>/status`) of the service process, sampled after
every repetition of the ingestion and HTTP benchmarks (so min/median/max also shows growth
across repetitions). Baselines: the ingestion service's RSS right after start-up (consumer
assigned, before any message), and the bare FastAPI app under the same wrk load.
"""
    section_ = Section("memory", "Memory: peak RSS of the service process", intro)
    table = Table(["process", "min MiB", "median", "max", "vs baseline"])
    series: list[tuple[str, Stats]] = []
    if ingestion is not None:
        startup = Stats.of([ingestion.startup_rss_mib])
        peak = Stats.of(ingestion.peak_rss_mib)
        table.rows.append(
            ["baseline: service after start-up, idle", *stats_cells(startup, 1), ratio(1.0)]
        )
        table.rows.append(
            ["service during ingestion", *stats_cells(peak, 1), ratio(peak.ratio_to(startup))]
        )
        series += [("service, start-up", startup), ("service, ingestion", peak)]
    if http is not None:
        bare = Stats.of(http.baseline_peak_rss_mib)
        peak = Stats.of(http.service_peak_rss_mib)
        table.rows.append(
            ["baseline: bare FastAPI app under wrk", *stats_cells(bare, 1), ratio(1.0)]
        )
        table.rows.append(
            ["service during HTTP load", *stats_cells(peak, 1), ratio(peak.ratio_to(bare))]
        )
        series += [("bare app, HTTP", bare), ("service, HTTP", peak)]
    section_.tables.append(("", table))
    section_.targets += [
        Target(f"peak RSS, {measured} (no fixed target)", peak, "MiB", baseline=base, digits=1)
        for (_, base), (measured, peak) in zip(series[::2], series[1::2], strict=True)
    ]

    def draw(path: Path) -> None:
        bar_chart(
            path,
            title="Peak RSS (VmHWM) per repetition (median, min-max whiskers)",
            ylabel="MiB",
            labels=[name for name, _ in series],
            series=[("MiB", [stats for _, stats in series])],
        )

    section_.plots.append(("memory.png", "Peak RSS of the service process", draw))
    return section_


@dataclass
class Runner:
    arguments: argparse.Namespace
    harness: Harness
    failures: list[str] = field(default_factory=list)
    # Kept for the memory section, which reports what these two sampled.
    ingestion: ingestion_e2e.IngestionResults | None = None
    http: http_api.HttpResults | None = None

    def run(self, names: list[str]) -> list[Section]:
        quick, repetitions = self.arguments.quick, self.arguments.repetitions
        builders: dict[str, Callable[[], Section]] = {
            "ingestion": self._ingestion,
            "http": self._http,
            "roster": lambda: roster.section(
                roster.measure(self.harness, quick=quick, repetitions=repetitions)
            ),
            "review": lambda: review.section(
                review.measure(self.harness, quick=quick, repetitions=repetitions)
            ),
            "retention": lambda: retention.section(
                retention.measure(self.harness, quick=quick, repetitions=repetitions)
            ),
            "tests": self._tests,
            "startup": lambda: startup.section(
                startup.measure(self.harness, repetitions=repetitions)
            ),
            "memory": lambda: memory_section(self.ingestion, self.http),
        }
        return [self._timed(name, builders[name]) for name in names]

    def _timed(self, name: str, build: Callable[[], Section]) -> Section:
        progress(f"== {name}: {DESCRIPTIONS[name]}")
        started = time.perf_counter()
        try:
            section = build()
        except Exception as error:  # the other benchmarks still run and are reported
            self.failures.append(name)
            progress(f"== {name} FAILED: {type(error).__name__}: {error}")
            section = Section(name, f"{name} (failed)", DESCRIPTIONS[name])
            section.notes.append(f"**This benchmark failed:** `{type(error).__name__}: {error}`")
        section.seconds = time.perf_counter() - started
        progress(f"== {name} done in {section.seconds:.0f} s")
        return section

    def _ingestion(self) -> Section:
        self.ingestion = ingestion_e2e.measure(
            self.harness, quick=self.arguments.quick, repetitions=self.arguments.repetitions
        )
        return ingestion_e2e.section(self.ingestion)

    def _http(self) -> Section:
        seconds = self.arguments.seconds or (2.0 if self.arguments.quick else 30.0)
        self.http = http_api.measure(
            self.harness, seconds_per_run=seconds, repetitions=self.arguments.repetitions
        )
        return http_api.section(self.http)

    def _tests(self) -> Section:
        quick = self.arguments.quick
        # The whole suite takes minutes per repetition: by default only in a full run.
        suite = self.arguments.suite
        if suite is None:
            suite = not (quick or self.arguments.only)
        return feedback.section(
            feedback.measure(
                self.harness, quick=quick, repetitions=self.arguments.repetitions, suite=suite
            )
        )


def load_plotting() -> None:
    """Import matplotlib (Agg) and draw once now: a concurrent `uv sync` (another shell's
    `./dev test`) removing the bench group mid-run must not cost the report at the end."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.bar([0], [1], yerr=[[0], [0]])
    figure.savefig(io.BytesIO(), format="png")
    plt.close(figure)


def print_targets(sections: list[Section], *, quick: bool) -> None:
    """The summary table of the report, as text on stdout."""
    rows = [
        [section.key, target.requirement, *target.cells(), target.verdict(quick)]
        for section in sections
        for target in section.targets
    ]
    if not rows:
        return
    header = ["benchmark", "target", *TARGET_COLUMNS, "met"]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _terminate(signum: int, frame: FrameType | None) -> Any:
    # SIGTERM/SIGHUP take the same way out as Ctrl-C: the finally blocks stop every server
    # and child process this run started.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.repetitions < 3:
        parser.error("--repetitions must be at least 3 (min/median/max)")
    names = selected(arguments, parser)
    partial = arguments.quick or bool(arguments.only)
    output: Path = arguments.output or (SCRATCH_OUTPUT if partial else DEFAULT_OUTPUT)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)
    command = "./dev bench" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    progress(f"benchmarks: {', '.join(names)}; report: {os.path.relpath(output)}")
    started = time.perf_counter()
    load_plotting()
    harness = Harness(quick=arguments.quick)
    runner = Runner(arguments, harness)
    try:
        sections = runner.run(names)
    except KeyboardInterrupt:
        progress("interrupted: stopping servers and child processes")
        return 130
    finally:
        harness.close()
    written = write_report(
        output,
        sections,
        command=command.replace("./dev bench ", "./dev bench ").strip(),
        profile_findings=PROFILE_FINDINGS.read_text(),
        quick=arguments.quick,
    )
    print_targets(sections, quick=arguments.quick)
    progress(
        f"done in {time.perf_counter() - started:.0f} s; wrote "
        + ", ".join(os.path.relpath(path) for path in written)
    )
    if runner.failures:
        progress(f"failed: {', '.join(runner.failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
