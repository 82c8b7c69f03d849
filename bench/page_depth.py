"""Page latency at depth: one teacher with 50,000 students, a page of 20 read by cursor at
depths 0, 10,000 and 49,000, and by offset at 49,000 for comparison (part of ``--only http``).

Each page is one URL loaded by wrk with a single connection (requests one after another, so the
latency is the page's own, not a queue's); the cursor URLs are the ``next`` of an offset page
just before each depth, as a client walking the list would hold them. Depth 0 is the first page,
which also counts the total.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.harness import Stats, progress
from bench.report import Section, Table, Target, number, ratio, stats_cells
from bench.wrk import WrkResult, get_script, run_wrk
from class_management_service.db import asyncpg_dsn

TEACHER = "bench-depth-teacher"
STUDENTS = 50_000
PAGE = 20
DEPTHS = (0, 10_000, 49_000)
TARGET_RATIO = 1.5
BEFORE = "offset pagination before this round: a page at depth 49,000 took a median 4.65 s"


@dataclass
class DepthResults:
    runs: dict[str, list[WrkResult]] = field(default_factory=dict)

    def latency(self, name: str) -> Stats:
        return Stats.of([run.p50_ms for run in self.runs[name]])


def cursor_name(depth: int) -> str:
    return f"cursor page at depth {depth:,}"


OFFSET_NAME = f"offset page at depth {DEPTHS[-1]:,}"


async def seed(database_url: str) -> None:
    """The teacher's 50,000 students, by one set-based statement."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute(
            """
            INSERT INTO students (id, first_name, last_name, email, created_by_user_id)
            SELECT gen_random_uuid(), 'First' || n, 'Last' || (n % 997),
                   'd' || n || '@depth.example', $1
            FROM generate_series(1, $2) AS n
            """,
            TEACHER,
            STUDENTS,
        )
        await connection.execute("ANALYZE students")
    finally:
        await connection.close()


def _get(url: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"X-User-ID": TEACHER})  # noqa: S310
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        body: dict[str, object] = json.load(response)
    return body


def urls(base_url: str) -> dict[str, str]:
    """The page URLs to load, by name."""
    students = f"{base_url}/v1/classes/students?limit={PAGE}"
    pages = {}
    for depth in DEPTHS:
        if depth == 0:
            pages[cursor_name(depth)] = students
            continue
        before = _get(f"{students}&offset={depth - PAGE}")
        pages[cursor_name(depth)] = f"{students}&cursor={before['next']}"
    pages[OFFSET_NAME] = f"{students}&offset={DEPTHS[-1]}"
    return pages


def measure(
    wrk: str, base_url: str, scratch: Path, *, seconds: float, repetitions: int
) -> DepthResults:
    script = scratch / "depth.lua"
    script.write_text(get_script({"X-User-ID": TEACHER}))
    pages = urls(base_url)
    results = DepthResults({name: [] for name in pages})
    for repetition in range(1, repetitions + 1):
        for name, url in pages.items():  # interleaved, like the routes
            result = run_wrk(
                wrk,
                url,
                script,
                connections=1,
                seconds=seconds,
                arguments=(f"depth{repetition}-{uuid.uuid4().hex[:6]}",),
            )
            results.runs[name].append(result)
            progress(
                f"HTTP depth {repetition}/{repetitions} {name}: p50 {result.p50_ms:.2f} ms, "
                f"p95 {result.p95_ms:.2f} ms, errors {result.errors}"
            )
    return results


def extend(section: Section, results: DepthResults) -> None:
    """The depth table and its target in the HTTP section."""
    first = results.latency(cursor_name(0))
    table = Table(["page of 20", "min p50 ms", "median", "max", "vs first page", "p95 ms"])
    for name in results.runs:
        latency = results.latency(name)
        p95 = Stats.of([run.p95_ms for run in results.runs[name]])
        table.rows.append(
            [name, *stats_cells(latency, 2), ratio(latency.ratio_to(first)), number(p95.median, 2)]
        )
    section.tables.append(
        (
            f"Page latency at depth: one teacher's {STUDENTS:,} students sorted by name, one "
            "wrk connection (the page's own latency); depth 0 is the first page, which also "
            "counts the total.",
            table,
        )
    )
    deepest = results.latency(cursor_name(DEPTHS[-1]))
    section.targets.append(
        Target(
            f"cursor page at depth {DEPTHS[-1]:,} / first page <= {TARGET_RATIO}",
            deepest,
            "ms",
            baseline=first,
            at_most=TARGET_RATIO,
            share=True,
            digits=2,
        )
    )
    section.notes.append(
        f"For comparison, {BEFORE}; by offset it is now "
        f"{results.latency(OFFSET_NAME).median:,.1f} ms with one connection (it still reads and "
        "discards every row before it, which is why the `next` cursor exists)."
    )
