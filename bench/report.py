"""The benchmark report: sections of tables and targets, written as Markdown plus PNG plots.

Every benchmark returns a :class:`Section`. A row of a table shows min/median/max over the
repetitions and the median as a ratio to the baseline measured in the same run; a
:class:`Target` records whether a requirement was met. :func:`write_report` renders the
Markdown (``docs/benchmarks.md`` by default) and asks each section to draw its plots with
matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import REPOSITORY, Stats

Plotter = Callable[[Path], None]  # draws one PNG at the given path


@dataclass(frozen=True)
class Target:
    """One requirement, checked against this run's repetitions; adding one is one line::

        section.targets.append(Target("GET class >= 50 % of the bare endpoint", rps, "req/s",
                                      baseline=bare, at_least=0.5, share=True, platform=176))

    ``measured`` and ``baseline`` hold every repetition (the baseline measured in the same
    run). The bound (``at_least`` / ``at_most``) applies to the median of ``measured``, or with
    ``share`` to that median as a share of the baseline's. Without a bound the target is only
    reported. ``platform`` is the platform's original service's figure for the same quantity,
    shown as context.
    """

    requirement: str  # e.g. "GET /v1/classes/{id} >= 50 % of the bare endpoint"
    measured: Stats
    unit: str
    baseline: Stats | None = None
    at_least: float | None = None
    at_most: float | None = None
    share: bool = False
    digits: int = 0
    platform: float | None = None

    def __post_init__(self) -> None:
        if self.share and self.baseline is None:
            raise ValueError(f"{self.requirement}: a share needs a baseline")

    @property
    def value(self) -> float:
        """What the bound is checked against."""
        if self.share:
            assert self.baseline is not None
            return self.measured.ratio_to(self.baseline)
        return self.measured.median

    @property
    def met(self) -> bool | None:
        """None: nothing to check (no bound, or no number)."""
        if (self.at_least is None and self.at_most is None) or self.value != self.value:
            return None
        return (self.at_least is None or self.value >= self.at_least) and (
            self.at_most is None or self.value <= self.at_most
        )

    def verdict(self, quick: bool) -> str:
        """met / NOT MET; n/a for a quick run (small sizes prove nothing) or no bound."""
        return "n/a" if quick or self.met is None else ("met" if self.met else "NOT MET")

    def cells(self) -> list[str]:
        """measured min / median / max, baseline min / median / max, ratio, platform."""
        base = self.baseline
        return [
            " / ".join(stats_cells(self.measured, self.digits)) + f" {self.unit}",
            " / ".join(stats_cells(base, self.digits)) + f" {self.unit}" if base else "-",
            ratio(self.measured.ratio_to(base)) if base else "-",
            f"{number(self.platform, self.digits)} {self.unit}" if self.platform else "-",
        ]


@dataclass
class Table:
    """A Markdown table; ``rows`` are already formatted cells."""

    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    align: str = ""  # one of l/r per column; default: first left, others right

    def markdown(self) -> str:
        align = self.align or "l" + "r" * (len(self.columns) - 1)
        rule = ["---:" if a == "r" else ":---" for a in align]
        lines = ["| " + " | ".join(self.columns) + " |", "| " + " | ".join(rule) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Section:
    key: str  # the --only name; also the prefix of its plot files
    title: str
    intro: str
    tables: list[tuple[str, Table]] = field(default_factory=list)  # (caption, table)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: list[tuple[str, str, Plotter]] = field(default_factory=list)  # (file, alt, draw)
    seconds: float = 0.0  # wall time of the benchmark


TARGET_COLUMNS = (
    "measured min / median / max",
    "same-run baseline min / median / max",
    "median vs baseline",
    "platform's original",
)
TARGETS_INTRO = (
    "Every target of every benchmark in this run: its repetitions' min / median / max next to "
    "the baseline measured in the same run, and whether the median meets it (n/a in a quick "
    "run, or where no bound is set). \"platform's original\" is the figure of the platform's "
    "original service for the same quantity (27 essays/s ingestion, 176 req/s GET, 57 "
    "students/s created), kept as context."
)


def number(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def stats_cells(stats: Stats, digits: int = 0) -> list[str]:
    """min, median, max."""
    return [number(stats.min, digits), number(stats.median, digits), number(stats.max, digits)]


def ratio(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:.2f}x" if value >= 10 else f"{value * 100:.1f} %"


def _git_revision() -> str:
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return revision + (" + uncommitted changes" if dirty else "")


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def write_report(
    output: Path,
    sections: Sequence[Section],
    *,
    command: str,
    profile_findings: str,
    quick: bool,
) -> list[Path]:
    """Write the Markdown report and its plots (``<output dir>/<output stem>/*.png``)."""
    import matplotlib

    matplotlib.use("Agg")

    plot_dir = output.parent / output.stem
    plot_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    out: list[str] = [
        "# Benchmarks",
        "",
        "<!-- Generated by `./dev bench` (bench/__main__.py); edit the generator, not this "
        "file. -->",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at revision "
        f"{_git_revision()} on {_machine()}, by `{command}`"
        + (
            " (**quick run: small sizes, short durations; a smoke test, not a result**)"
            if quick
            else ""
        )
        + ".",
        "",
        "The machines are shared and noisy, so every figure stands next to a baseline measured "
        "in the same run and is read as a ratio to it. Each figure is the min / median / max "
        "over the repetitions; ratios compare medians. Reproduce with `./dev bench` (add "
        "`--help` for the options).",
        "",
    ]
    targets = [(section, target) for section in sections for target in section.targets]
    if targets:
        out += ["## Targets", "", TARGETS_INTRO, ""]
        columns = ["benchmark", "target", *TARGET_COLUMNS, "met"]
        summary = Table(columns, align="ll" + "r" * len(TARGET_COLUMNS) + "l")
        for section, target in targets:
            verdict = target.verdict(quick)
            shown = f"**{verdict}**" if verdict == "NOT MET" else verdict
            summary.rows.append([section.key, target.requirement, *target.cells(), shown])
        out += [summary.markdown(), ""]
    for section in sections:
        out += [f"## {section.title}", "", section.intro.strip(), ""]
        for caption, table in section.tables:
            if caption:
                out += [caption, ""]
            out += [table.markdown(), ""]
        for file_name, alt, draw in section.plots:
            path = plot_dir / file_name
            draw(path)
            written.append(path)
            out += [f"![{alt}]({plot_dir.name}/{file_name})", ""]
        for note in section.notes:
            out += [note.strip(), ""]
        out += [f"*Wall time of this benchmark: {section.seconds:.0f} s.*", ""]
    out += [profile_findings.strip(), ""]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(out))
    written.insert(0, output)
    return written


def bar_chart(
    path: Path,
    *,
    title: str,
    ylabel: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Stats]]],
    horizontal_line: tuple[float, str] | None = None,
    log: bool = False,
) -> None:
    """Grouped bars of medians with min-max whiskers; one group per label, one bar per series."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(labels) + 2), 4.2), dpi=110)
    width = 0.8 / max(1, len(series))
    for number_, (name, stats) in enumerate(series):
        positions = [i + (number_ - (len(series) - 1) / 2) * width for i in range(len(labels))]
        medians = [s.median for s in stats]
        errors = [
            [s.median - s.min for s in stats],
            [s.max - s.median for s in stats],
        ]
        axes.bar(positions, medians, width, yerr=errors, capsize=3, label=name)
    axes.set_xticks(range(len(labels)))
    axes.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    if log:
        axes.set_yscale("log")
    if horizontal_line is not None:
        value, label = horizontal_line
        axes.axhline(value, color="red", linestyle="--", linewidth=1, label=label)
    if len(series) > 1 or horizontal_line is not None:
        axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
