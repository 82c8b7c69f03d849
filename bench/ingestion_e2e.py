"""Ingestion end to end: essays/s from Kafka to committed rows, in the real service process.

    uv run python -m bench --only ingestion [--quick]

The service runs as operators run it (``python -m class_management_service run``, every worker
on, LOG_LEVEL=INFO), its consumer subscribed to a fresh topic and idle. Each repetition
produces ``events`` BatchAuthorMatchesSuggestedV1 messages (``essays`` essays with three
suggestions each, built by ``bench/bench_ingestion.py``) and times from the first send until
the consumer group's committed offset covers the last one (the consumer commits an offset only
after the rows are committed). Baselines on the same rows (fresh ids), measured right after
each repetition with raw asyncpg: one INSERT per row (on a slice of the rows: it is slow),
one ``unnest`` INSERT per poll batch, and COPY. Then the table is filled to 1,000,000 rows
with one ``INSERT ... SELECT generate_series`` and everything is measured again, to show that
the rate does not decay with the table's size. The service's peak RSS (VmHWM) is sampled
after every repetition.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import bench_ingestion
from bench.harness import BenchError, Harness, ServiceProcess, Stats, progress, run_async
from bench.report import Section, Table, Target, bar_chart, ratio, stats_cells
from class_management_service.db import asyncpg_dsn
from class_management_service.settings import Settings

SERVICE = "service consumer (Kafka -> committed rows)"
PER_ROW = "raw asyncpg: INSERT per row"
UNNEST = "raw asyncpg: unnest INSERT per poll batch"
COPY = "raw asyncpg: COPY"
METHODS = (SERVICE, PER_ROW, UNNEST, COPY)


@dataclass
class Phase:
    name: str
    rows_before: int
    seconds: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    essays: dict[str, int] = field(default_factory=dict)

    def rates(self, method: str) -> Stats:
        return Stats.of([self.essays[method] / s for s in self.seconds[method]])


@dataclass
class IngestionResults:
    events: int
    essays_per_event: int
    per_row_events: int
    max_poll_records: int
    phases: list[Phase] = field(default_factory=list)
    startup_rss_mib: float = 0.0
    peak_rss_mib: list[float] = field(default_factory=list)  # VmHWM after each repetition


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our loopback URL
        return json.loads(response.read())


def wait_until_assigned(service: ServiceProcess, within: float = 60.0) -> None:
    """Until /healthz reports the consumer's partition assigned (it answers 503 until then)."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = _get_json(f"{service.base_url}/healthz")
        except urllib.error.HTTPError as error:  # 503 while something is not up yet
            last = json.loads(error.read() or b"null")
        except OSError as error:
            last = str(error)
        consumer = (last or {}).get("dependencies", {}).get("kafka_consumer", {})
        if isinstance(consumer, dict) and consumer.get("assigned_partitions"):
            return
        time.sleep(0.2)
    raise BenchError(f"the consumer was not assigned within {within:.0f} s: {last}")


async def produce_and_wait(
    bootstrap: str, topic: str, group: str, messages: list[tuple[bytes, bytes]], target: int
) -> float:
    """Seconds from the first send until the group's committed offset reaches ``target``.

    The committed offset is read every 10 ms by a consumer of the group that is assigned the
    partitions without joining the group (so it never takes them from the service), paused (it
    fetches no records) and commits nothing: one OffsetFetch request per read. The admin client's
    ``list_consumer_group_offsets`` also looks the coordinator up on every call, which cost
    the broker twice the CPU (measured: 150 reads 0.30-0.46 s against 0.15 s), taken from the
    service and PostgreSQL on the same cores while the service is timed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    watcher = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await producer.start()
    await watcher.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await producer.partitions_for(topic)]
        watcher.assign(partitions)
        watcher.pause(*partitions)  # it only reads the committed offsets, never the records
        started = time.perf_counter()
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
        deadline = started + 600
        while True:
            committed = sum([await watcher.committed(tp) or 0 for tp in partitions])
            if committed >= target:
                return time.perf_counter() - started
            if time.perf_counter() > deadline:
                raise BenchError(f"the consumer committed {committed} of {target} in 10 minutes")
            await asyncio.sleep(0.01)
    finally:
        await producer.stop()
        await watcher.stop()


@dataclass
class ConsumingService:
    """A service process consuming its own fresh topic into its own fresh database."""

    dsn: str
    roster: bench_ingestion.Roster
    bootstrap: str
    topic: str
    group: str
    process: ServiceProcess


def start_consuming_service(
    harness: Harness, name: str, *, topic_prefix: str, group_prefix: str, **settings: str
) -> ConsumingService:
    """A seeded database ``bench_<name>``, a new topic, and ``service-<name>`` consuming it with
    short fetch/session timeouts, once its partition is assigned; ``settings`` are added."""
    database_url = harness.new_database(f"bench_{name}")
    dsn = asyncpg_dsn(database_url)
    roster = run_async(bench_ingestion.seed_roster(dsn))
    bootstrap = harness.kafka_bootstrap()
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"{topic_prefix}.{suffix}", f"{group_prefix}-{suffix}"
    run_async(bench_ingestion.produce(bootstrap, topic, []))  # creates the topic
    progress(f"{name}: starting the service process")
    process = harness.start_service(
        f"service-{name}",
        database_url,
        log_level="INFO",
        author_matches_topic=topic,
        dead_letter_topic=f"{topic}.dlq",
        consumer_group_id=group,
        consumer_fetch_timeout_ms="100",
        consumer_session_timeout_ms="6000",
        consumer_heartbeat_interval_ms="1000",
        **settings,
    )
    wait_until_assigned(process)
    return ConsumingService(dsn, roster, bootstrap, topic, group, process)


def envelope_messages(
    roster: bench_ingestion.Roster, events: int, essays: int, rng: random.Random
) -> list[tuple[bytes, bytes]]:
    """``events`` author-match envelopes as Kafka (key, value) pairs, keyed by batch."""
    return [
        (body["data"]["batch_id"].encode(), json.dumps(body).encode())
        for body in bench_ingestion.make_envelopes(roster, events, essays, rng)
    ]


PREFILL = """
INSERT INTO essay_student_associations (
    id, essay_id, batch_id, class_id, student_id, confidence_score, match_reasons, filename,
    status, validation_method, validated_by, validated_at, source_event_id)
SELECT gen_random_uuid(), gen_random_uuid(), md5('prefill' || (g / 30)::text)::uuid,
       ($1::uuid[])[1 + g % $3], ($2::uuid[])[1 + g % $3], 0.9, '["prefill"]'::jsonb,
       'essay_' || g || '.docx', 'confirmed', 'human', 'bench-teacher', now(), NULL
FROM generate_series(1, $4::int) AS g
"""


async def prefill(dsn: str, roster: bench_ingestion.Roster, rows: int) -> float:
    """``rows`` decided associations of the roster's classes, in one statement; seconds."""
    pairs = [(c, s) for c, members in roster.students.items() for s in members]
    connection = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        # Skips the foreign-key triggers of this session only (the ids come from the roster),
        # which would otherwise double the time; every index is still maintained.
        await connection.execute("SET session_replication_role = replica")
        await connection.execute(
            PREFILL, [c for c, _ in pairs], [s for _, s in pairs], len(pairs), rows
        )
        await connection.execute("RESET session_replication_role")
        await connection.execute("ANALYZE essay_student_associations")
        return time.perf_counter() - started
    finally:
        await connection.close()


def measure(harness: Harness, *, quick: bool, repetitions: int) -> IngestionResults:
    events, essays = (200, 30) if quick else (1000, 30)
    per_row_events = events // 5
    preload_rows = 100_000 if quick else 1_000_000
    max_poll_records = Settings().consumer_max_poll_records
    results = IngestionResults(events, essays, per_row_events, max_poll_records)

    consuming = start_consuming_service(
        harness, "ingestion", topic_prefix="bench.author-matches", group_prefix="bench"
    )
    dsn, roster, bootstrap = consuming.dsn, consuming.roster, consuming.bootstrap
    topic, group, service = consuming.topic, consuming.group, consuming.process
    results.startup_rss_mib = (service.status_kib("VmRSS") or 0) / 1024

    rng = random.Random(4)
    committed = 0
    for phase_name, fill in (("empty table", 0), (f"table holding {preload_rows:,} rows", 1)):
        if fill:
            progress(f"ingestion: filling the table to {preload_rows:,} rows (generate_series)")
            rows_now = run_async(bench_ingestion.count_rows(dsn))
            took = run_async(prefill(dsn, roster, preload_rows - rows_now))
            progress(f"ingestion: filled in {took:.1f} s")
        phase = Phase(phase_name, run_async(bench_ingestion.count_rows(dsn)))
        phase.essays = {
            SERVICE: events * essays,
            PER_ROW: per_row_events * essays,
            UNNEST: events * essays,
            COPY: events * essays,
        }
        results.phases.append(phase)
        for repetition in range(1, repetitions + 1):
            before = run_async(bench_ingestion.count_rows(dsn))
            messages = envelope_messages(roster, events, essays, rng)
            values = [value for _, value in messages]
            committed += events
            seconds = run_async(produce_and_wait(bootstrap, topic, group, messages, committed))
            stored = run_async(bench_ingestion.count_rows(dsn)) - before
            if stored != events * essays:
                raise BenchError(f"expected {events * essays} new rows, found {stored}")
            phase.seconds[SERVICE].append(seconds)
            results.peak_rss_mib.append(service.peak_rss_mib())
            # Fresh ids for each baseline (built before its timing starts), real inserts.
            rows = bench_ingestion.baseline_rows
            phase.seconds[PER_ROW].append(
                run_async(bench_ingestion.time_per_row(dsn, rows(values[:per_row_events])))
            )
            phase.seconds[UNNEST].append(
                run_async(bench_ingestion.time_unnest(dsn, rows(values), max_poll_records))
            )
            phase.seconds[COPY].append(run_async(bench_ingestion.time_copy(dsn, rows(values))))
            service_rate = events * essays / seconds
            copy_rate = events * essays / phase.seconds[COPY][-1]
            progress(
                f"ingestion {phase_name} {repetition}/{repetitions}: service "
                f"{service_rate:,.0f} essays/s, COPY {copy_rate:,.0f} essays/s "
                f"({service_rate / copy_rate:.0%}), peak RSS {results.peak_rss_mib[-1]:.0f} MiB"
            )
    harness.stop(service.popen)
    return results


def section(results: IngestionResults) -> Section:
    total = results.events * results.essays_per_event
    intro = f"""
Essays per second from Kafka to committed rows in the real service process (its consumer, Redis
fast path, one transaction per partition batch, offset commit after the rows), next to raw
asyncpg writing the same rows (fresh ids) into the same table right after each repetition.
Per repetition: {results.events:,} events x {results.essays_per_event} essays x 3 suggestions
= {total:,} essays; the service's rate is timed from the first send until the consumer group's
committed offset covers the last event; `max_poll_records` = {results.max_poll_records}. The
INSERT-per-row baseline runs on the first {results.per_row_events:,} events' rows only (it is
slow). Then the table is filled (one `INSERT ... SELECT generate_series`) and everything is
measured again.
"""
    section_ = Section("ingestion", "Ingestion, Kafka to committed rows", intro)
    phases = results.phases
    for phase in phases:
        copy = phase.rates(COPY)
        table = Table(["method", "min essays/s", "median", "max", "vs COPY"])
        for method in METHODS:
            rates = phase.rates(method)
            table.rows.append([method, *stats_cells(rates), ratio(rates.ratio_to(copy))])
        caption = f"**{phase.name}** ({phase.rows_before:,} rows before the first repetition):"
        section_.tables.append((caption, table))
        service = phase.rates(SERVICE)
        section_.targets.append(
            Target(
                f"{phase.name}: service >= 50 % of raw COPY",
                service,
                "essays/s",
                baseline=copy,
                at_least=0.5,
                share=True,
                platform=27,
            )
        )
    if len(phases) == 2:
        empty, full = (phase.rates(SERVICE) for phase in phases)
        section_.targets.append(
            Target(
                f"rate holds on the {phases[1].name.removeprefix('table holding ')} table "
                "(>= 80 % of the empty table's)",
                full,
                "essays/s",
                baseline=empty,
                at_least=0.8,
                share=True,
            )
        )

    def draw(path: Path) -> None:
        bar_chart(
            path,
            title="Ingestion rate by table size (median, min-max whiskers)",
            ylabel="essays/s",
            labels=[m.replace("raw asyncpg: ", "raw ") for m in METHODS],
            series=[(phase.name, [phase.rates(m) for m in METHODS]) for phase in phases],
        )

    section_.plots.append(("ingestion_rate.png", "Ingestion rate over table size", draw))
    return section_
