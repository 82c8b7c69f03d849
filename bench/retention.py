"""Ingestion while the retention worker deletes a backlog, vs ingestion with nothing to delete.

    uv run python -m bench --only retention [--quick]

One service process, as operators run it (every worker on, the retention worker among them,
passing every half second), consumes a fresh topic with the harness of ``ingestion_e2e.py``.
Each repetition measures ingestion twice, the same way (``events`` BatchAuthorMatchesSuggestedV1
messages timed from the first send until the consumer group's committed offset covers the last):

- **retention idle** (the baseline): nothing is past its window; the worker's passes find
  nothing to delete.
- **retention deleting**: first ``backlog`` processed-event records (31 days old, of the
  consumed topic) and as many published outbox rows (8 days old) are written with one
  ``INSERT ... SELECT generate_series`` each, the measurement starts once the worker's
  ``retention_deleted_rows_total`` moves, and the backlog left at its end is recorded (when
  none is left, retention ran for only part of the measurement and the table says so).

Before the next repetition the worker finishes the backlog, so the baseline never shares the
machine with a delete.
"""

from __future__ import annotations

import random
import re
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import asyncpg

from bench.harness import BenchError, Harness, ServiceProcess, Stats, progress, run_async
from bench.ingestion_e2e import envelope_messages, produce_and_wait, start_consuming_service
from bench.report import Section, Table, Target, bar_chart, ratio, stats_cells

IDLE = "ingestion, retention idle"
DELETING = "ingestion while retention deletes a backlog"
# The service's default windows: 30 days for the ledger, 7 for published outbox rows.
FILL_LEDGER = """
INSERT INTO processed_events (event_id, topic, processed_at)
SELECT CAST($1 || lpad(to_hex(g), 16, '0') AS uuid), $2,
       now() - interval '31 days' - make_interval(secs => g)
FROM generate_series(0, $3 - 1) AS g
"""
FILL_OUTBOX = """
INSERT INTO outbox_events (id, aggregate_type, aggregate_id, aggregate_sequence, topic,
    event_type, message_key, envelope, headers, status, created_at, next_attempt_at, published_at)
SELECT CAST($1 || lpad(to_hex(g), 16, '0') AS uuid), 'bench', 'bench-' || $1 || g, 1, 'bench',
       'bench', 'bench-' || $1 || g, '{"bench": true}', '{}', 'published', t.at, t.at, t.at
FROM generate_series(0, $2 - 1) AS g,
     LATERAL (SELECT now() - interval '8 days' - make_interval(secs => g) AS at) AS t
"""
OLD_ROWS = """
SELECT (SELECT count(*) FROM processed_events WHERE processed_at < now() - interval '30 days')
     + (SELECT count(*) FROM outbox_events
        WHERE status = 'published' AND published_at < now() - interval '7 days')
"""
_DELETED_SAMPLE = re.compile(r'^retention_deleted_rows_total\{table="[a-z_]+"\} ([0-9.e+]+)$', re.M)


@dataclass
class RetentionResults:
    events: int
    essays_per_event: int
    backlog: int  # rows per table
    seconds: dict[str, list[float]] = field(default_factory=lambda: {IDLE: [], DELETING: []})
    deleted_during: list[int] = field(default_factory=list)
    left_after: list[int] = field(default_factory=list)

    def rates(self, method: str) -> Stats:
        essays = self.events * self.essays_per_event
        return Stats.of([essays / s for s in self.seconds[method]])

    def delete_rates(self) -> Stats:
        pairs = zip(self.deleted_during, self.seconds[DELETING], strict=True)
        return Stats.of([rows / seconds for rows, seconds in pairs])


def deleted_so_far(service: ServiceProcess) -> int:
    """The service's ``retention_deleted_rows_total``, every table."""
    url = f"{service.base_url}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our loopback URL
        text = response.read().decode()
    return int(sum(float(value) for value in _DELETED_SAMPLE.findall(text)))


def deleted_more_than(service: ServiceProcess, before: int) -> bool:
    return deleted_so_far(service) > before


async def fill_backlog(dsn: str, topic: str, rows: int) -> float:
    """``rows`` old ledger rows of ``topic`` and as many old published outbox rows; seconds."""
    connection = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        async with connection.transaction():  # the worker sees the whole backlog at once
            await connection.execute(FILL_LEDGER, uuid.uuid4().hex[:16], topic, rows)
            await connection.execute(FILL_OUTBOX, uuid.uuid4().hex[:16], rows)
        return time.perf_counter() - started
    finally:
        await connection.close()


async def old_rows(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval(OLD_ROWS))
    finally:
        await connection.close()


def wait_until(condition: str, check: Callable[[], bool], within: float = 600.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"{condition} did not happen within {within:.0f} s")
        time.sleep(0.1)


def measure(harness: Harness, *, quick: bool, repetitions: int) -> RetentionResults:
    events, essays = (200, 30) if quick else (1000, 30)
    backlog = 300_000 if quick else 1_000_000
    results = RetentionResults(events, essays, backlog)
    consuming = start_consuming_service(
        harness,
        "retention",
        topic_prefix="bench.retention",
        group_prefix="bench-retention",
        retention_interval_seconds="0.5",
    )
    dsn, bootstrap, service = consuming.dsn, consuming.bootstrap, consuming.process
    topic, group = consuming.topic, consuming.group
    rng = random.Random(15)
    committed = 0

    def ingest() -> float:
        nonlocal committed
        messages = envelope_messages(consuming.roster, events, essays, rng)
        committed += events
        return run_async(produce_and_wait(bootstrap, topic, group, messages, committed))

    for repetition in range(1, repetitions + 1):
        results.seconds[IDLE].append(ingest())
        took = run_async(fill_backlog(dsn, topic, backlog))
        progress(f"retention: {2 * backlog:,} old rows written in {took:.1f} s")
        before = deleted_so_far(service)
        first_delete = partial(deleted_more_than, service, before)
        wait_until("the retention worker's first delete", first_delete)
        started_at = deleted_so_far(service)
        results.seconds[DELETING].append(ingest())
        results.deleted_during.append(deleted_so_far(service) - started_at)
        results.left_after.append(run_async(old_rows(dsn)))
        wait_until("the end of the backlog", lambda: run_async(old_rows(dsn)) == 0)
        idle, deleting = (results.seconds[m][-1] for m in (IDLE, DELETING))
        progress(
            f"retention {repetition}/{repetitions}: ingestion {idle:.2f} s idle, "
            f"{deleting:.2f} s while deleting ({idle / deleting:.0%} of the idle rate); "
            f"{results.deleted_during[-1]:,} rows deleted meanwhile, "
            f"{results.left_after[-1]:,} left at its end"
        )
    harness.stop(service.popen)
    return results


def section(results: RetentionResults) -> Section:
    intro = f"""
Essays per second from Kafka to committed rows in the real service process while its retention
worker deletes a backlog of {results.backlog:,} processed-event records and {results.backlog:,}
published outbox rows past their windows (batches of 1,000, `SKIP LOCKED`), next to the same
process with nothing to delete, alternating within each repetition. Per measurement:
{results.events:,} events x {results.essays_per_event} essays, timed from the first send until
the consumer group's committed offset covers the last event.
"""
    section_ = Section("retention", "Ingestion during retention", intro)
    idle, deleting = results.rates(IDLE), results.rates(DELETING)
    table = Table(["measurement", "min essays/s", "median", "max", "vs retention idle"])
    table.rows.append([IDLE, *stats_cells(idle), ratio(1.0)])
    table.rows.append([DELETING, *stats_cells(deleting), ratio(deleting.ratio_to(idle))])
    section_.tables.append(("", table))
    deletes = Table(["retention during the measurement", "min", "median", "max"])
    deletes.rows.append(["rows deleted per second", *stats_cells(results.delete_rates())])
    left = Stats.of(results.left_after)
    deletes.rows.append(["backlog rows left at its end", *stats_cells(left)])
    section_.tables.append(("", deletes))
    if min(results.left_after) == 0:
        section_.notes.append(
            "In at least one repetition the worker finished the backlog before ingestion did: "
            "that measurement ran partly without retention."
        )
    section_.targets.append(
        Target(
            "ingestion during retention >= 80 % of without",
            deleting,
            "essays/s",
            baseline=idle,
            at_least=0.8,
            share=True,
        )
    )

    def draw(path: Path) -> None:
        bar_chart(
            path,
            title="Ingestion rate, retention idle vs deleting (median, min-max whiskers)",
            ylabel="essays/s",
            labels=["retention idle", "retention deleting"],
            series=[("essays/s", [idle, deleting])],
        )

    section_.plots.append(("retention.png", "Ingestion rate during retention", draw))
    return section_
