"""Bulk roster import: students/s for a 20,000-row CSV, next to raw COPY (wraps
``bench/bench_roster_import.py``).

    uv run python -m bench --only roster [--quick]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench import bench_roster_import as roster_import
from bench.harness import Harness, Stats, progress, rates, run_async
from bench.report import Section, Table, Target, bar_chart, ratio, stats_cells

TARGET = 10_000.0


@dataclass
class RosterResults:
    rows: int
    seconds: dict[str, list[float]]

    def rates(self, name: str) -> Stats:
        return rates(self.rows, self.seconds[name])


def measure(harness: Harness, *, quick: bool, repetitions: int) -> RosterResults:
    rows = 2_000 if quick else 20_000
    database_url = harness.new_database("bench_roster")
    seconds = run_async(roster_import.measure(database_url, rows, repetitions))
    results = RosterResults(rows, seconds)
    progress(
        f"roster: {results.rates(roster_import.IMPORT_CREATES).median:,.0f} students/s, COPY "
        f"{results.rates(roster_import.RAW_COPY).median:,.0f} students/s"
    )
    return results


def section(results: RosterResults) -> Section:
    intro = f"""
`POST /v1/classes/{{class_id}}/students/import` with a {results.rows:,}-row CSV whose every row
creates a student (the app in-process over httpx's ASGI transport: upload, parse, plan, COPY of
students, memberships and `StudentCreatedV1` outbox rows, commit, JSON report), the same with
the short report (`rows=rejected`), and the same file again (every row unchanged). Baseline:
asyncpg's `copy_records_to_table` of the same rows into `students` alone.
"""
    section_ = Section("roster", "Bulk roster import", intro)
    copy = results.rates(roster_import.RAW_COPY)
    table = Table(["path", "min students/s", "median", "max", "vs COPY"])
    for name in results.seconds:
        values = results.rates(name)
        table.rows.append([name.strip(), *stats_cells(values), ratio(values.ratio_to(copy))])
    section_.tables.append(("", table))
    creates = results.rates(roster_import.IMPORT_CREATES)
    section_.targets.append(
        Target(
            f"creating import of {results.rows:,} rows >= {TARGET:,.0f} students/s",
            creates,
            "students/s",
            baseline=copy,
            at_least=TARGET,
            platform=57,
        )
    )

    def draw(path: Path) -> None:
        names = list(results.seconds)
        bar_chart(
            path,
            title=f"Roster import of {results.rows:,} rows (median, min-max whiskers)",
            ylabel="students/s",
            labels=[n.strip() for n in names],
            series=[("students/s", [results.rates(n) for n in names])],
            horizontal_line=(TARGET, "target"),
        )

    section_.plots.append(("roster_import.png", "Roster import students per second", draw))
    return section_
