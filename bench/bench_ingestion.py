"""Throughput of author-match ingestion, next to raw asyncpg baselines on the same rows.

    uv run python -m bench.bench_ingestion [--events 1000] [--essays 30] [--runs 2]

Per run: pre-load ``events`` BatchAuthorMatchesSuggestedV1 messages (``essays`` essays with 3
suggestions each) into a fresh topic, start the service's consumer worker (the same object the
service runs: Kafka -> decode -> Redis fast path -> one transaction per partition batch ->
offset commit), and time until every offset is committed (which implies every row is). Then
insert rows of the same shape with raw asyncpg: one INSERT per row, one unnest INSERT per poll
batch, and COPY. Every run writes into the same table, so later runs show whether the rate
holds up as the table grows (``--preload`` adds rows up front to push that further).

Servers come from local_infra (started here, stopped at the end) unless the
CLASS_MANAGEMENT_SERVICE_DATABASE_URL / _REDIS_URL / _KAFKA_BOOTSTRAP_SERVERS variables name
running ones. The benchmark database is created fresh and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from class_management_service.bootstrap import (
    author_match_handler,
    build_container,
    consumer_worker,
)
from class_management_service.courses.domain import CourseCode
from class_management_service.courses.reference import course_id
from class_management_service.db import asyncpg_dsn
from class_management_service.messaging import topics
from class_management_service.migrations import runner
from class_management_service.settings import Settings
from local_infra.paths import infra_root
from local_infra.session import SessionInfra

SUGGESTIONS_PER_ESSAY = 3
STUDENTS_PER_CLASS = 30
CLASSES = 40

# The columns the service writes per essay, with their types: every baseline (COPY, unnest,
# INSERT per row) writes exactly these, built by baseline_rows. A column added to the
# service's INSERT goes here and into baseline_rows, and nowhere else.
BASELINE_COLUMNS = {
    "id": "uuid",
    "essay_id": "uuid",
    "batch_id": "uuid",
    "class_id": "uuid",
    "student_id": "uuid",
    "confidence_score": "float8",
    "match_reasons": "jsonb",
    "suggestions": "jsonb",
    "filename": "text",
    "status": "text",
    "validation_method": "text",
    "validated_at": "timestamptz",
    "source_event_id": "uuid",
    "correlation_id": "uuid",
    "trace_context": "jsonb",
}
COLUMNS = tuple(BASELINE_COLUMNS)


@dataclass
class Roster:
    classes: list[uuid.UUID]
    students: dict[uuid.UUID, list[uuid.UUID]]


async def seed_roster(dsn: str) -> Roster:
    connection = await asyncpg.connect(dsn)
    try:
        classes = [uuid.uuid4() for _ in range(CLASSES)]
        students = {c: [uuid.uuid4() for _ in range(STUDENTS_PER_CLASS)] for c in classes}
        await connection.copy_records_to_table(
            "classes",
            records=[
                (c, f"Bench {i}", "bench-teacher", course_id(CourseCode.ENG5))
                for i, c in enumerate(classes)
            ],
            columns=("id", "name", "created_by_user_id", "course_id"),
        )
        await connection.copy_records_to_table(
            "students",
            records=[
                (s, "First", "Last", "bench-teacher")
                for members in students.values()
                for s in members
            ],
            columns=("id", "first_name", "last_name", "created_by_user_id"),
        )
        await connection.copy_records_to_table(
            "class_students",
            records=[(c, s) for c, members in students.items() for s in members],
            columns=("class_id", "student_id"),
        )
    finally:
        await connection.close()
    return Roster(classes, students)


def make_envelopes(
    roster: Roster, events: int, essays: int, rng: random.Random
) -> list[dict[str, Any]]:
    envelopes = []
    for index in range(events):
        class_id = roster.classes[index % len(roster.classes)]
        members = roster.students[class_id]
        batch_id = str(uuid.uuid4())
        results: list[dict[str, Any]] = []
        for number in range(essays):
            chosen = rng.sample(members, SUGGESTIONS_PER_ESSAY)
            results.append(
                {
                    "essay_id": str(uuid.uuid4()),
                    "text_storage_id": f"storage-{uuid.uuid4().hex}",
                    "filename": f"essay_{index}_{number}.docx",
                    "suggestions": [
                        {
                            "student_id": str(student),
                            "student_name": "First Last",
                            "student_email": None,
                            "confidence_score": round(rng.random(), 4),
                            "match_reasons": ["fuzzy_name", "header"],
                            "extraction_metadata": {"method": "header"},
                        }
                        for student in chosen
                    ],
                    "no_match_reason": None,
                    "extraction_metadata": {},
                }
            )
        envelopes.append(
            {
                "event_id": str(uuid.uuid4()),
                "event_type": topics.BATCH_AUTHOR_MATCHES_SUGGESTED,
                "event_timestamp": "2025-03-01T12:00:00+00:00",
                "source_service": "nlp_service",
                "schema_version": 1,
                "correlation_id": str(uuid.uuid4()),
                "data_schema_uri": None,
                "data": {
                    "event_name": "batch.author.matches.suggested",
                    "entity_id": batch_id,
                    "entity_type": "batch",
                    "parent_id": None,
                    "timestamp": "2025-03-01T12:00:00+00:00",
                    "batch_id": batch_id,
                    "class_id": str(class_id),
                    "course_code": "ENG5",
                    "match_results": results,
                    "processing_summary": {"total_essays": essays, "matched": essays},
                    "processing_metadata": {},
                },
                "metadata": {"partition_key": batch_id},
            }
        )
    return envelopes


def baseline_rows(messages: Sequence[bytes]) -> list[list[tuple[Any, ...]]]:
    """The rows the service stores for these events (the best suggestion, the whole ranking),
    in ``COLUMNS`` order, with fresh essay ids so every method performs real inserts; grouped
    per event. Undecided: the bench runs without an auto-confirm policy."""
    grouped = []
    for message in messages:
        envelope = json.loads(message)
        data = envelope["data"]
        event_id = uuid.uuid4()
        correlation_id = uuid.UUID(envelope["correlation_id"])
        rows = []
        for result in data["match_results"]:
            # Every suggested student is in the class: the service's ranking keeps them all.
            ranked = sorted(
                result["suggestions"],
                key=lambda s: (-s["confidence_score"], uuid.UUID(s["student_id"]).int),
            )
            best = ranked[0]
            rows.append(
                (
                    uuid.uuid4(),
                    uuid.uuid4(),
                    uuid.UUID(data["batch_id"]),
                    uuid.UUID(data["class_id"]),
                    uuid.UUID(best["student_id"]),
                    best["confidence_score"],
                    json.dumps(best["match_reasons"]),
                    json.dumps(
                        [
                            {
                                "student_id": s["student_id"],
                                "confidence_score": s["confidence_score"],
                                "match_reasons": s["match_reasons"],
                            }
                            for s in ranked
                        ]
                    ),
                    result["filename"],
                    "pending_validation",
                    None,  # validation_method, validated_at: undecided
                    None,
                    event_id,
                    correlation_id,
                    None,  # trace_context: the bench's events carry no traceparent
                )
            )
        grouped.append(rows)
    return grouped


async def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, compression_type=None)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def time_consumer(settings: Settings, events: int) -> tuple[float, float]:
    """(seconds from start to the last commit, seconds from partition assignment to it)."""
    container = build_container(settings)
    worker = consumer_worker(
        container, settings.author_match_consumer, author_match_handler(container)
    )
    tp = TopicPartition(settings.author_matches_topic, 0)
    started = time.perf_counter()
    task = asyncio.create_task(worker.run())
    assigned_at: float | None = None
    try:
        while worker.progress.committed.get(tp) != events:
            if task.done():
                task.result()
                raise RuntimeError("consumer stopped early")
            if assigned_at is None and worker.progress.assigned:
                assigned_at = time.perf_counter()
            await asyncio.sleep(0.002)
        finished = time.perf_counter()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await container.producer.stop()
        await container.redis.aclose()
        await container.engine.dispose()
    return finished - started, finished - (assigned_at or started)


_COLUMN_LIST = ", ".join(COLUMNS)
INSERT_ONE = (
    f"INSERT INTO essay_student_associations ({_COLUMN_LIST}) VALUES ("  # noqa: S608 - constants
    + ", ".join(f"${n}::{kind}" for n, kind in enumerate(BASELINE_COLUMNS.values(), 1))
    + ") ON CONFLICT (essay_id) DO NOTHING"
)
# jsonb travels as text[] (an array of jsonb parameters would be encoded value by value).
INSERT_UNNEST = (
    f"INSERT INTO essay_student_associations ({_COLUMN_LIST}) SELECT "  # noqa: S608 - constants
    + ", ".join(
        f"{name}::jsonb" if kind == "jsonb" else name for name, kind in BASELINE_COLUMNS.items()
    )
    + " FROM unnest("
    + ", ".join(
        f"${n}::{'text' if kind == 'jsonb' else kind}[]"
        for n, kind in enumerate(BASELINE_COLUMNS.values(), 1)
    )
    + f") AS r({_COLUMN_LIST}) ON CONFLICT (essay_id) DO NOTHING"
)


async def time_per_row(dsn: str, grouped: list[list[tuple[Any, ...]]]) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for rows in grouped:  # one transaction per event, one statement per essay
            async with connection.transaction():
                for row in rows:
                    await connection.execute(INSERT_ONE, *row)
        return time.perf_counter() - started
    finally:
        await connection.close()


async def time_unnest(dsn: str, grouped: list[list[tuple[Any, ...]]], batch: int) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for first in range(0, len(grouped), batch):  # one statement per poll batch
            rows = [row for rows in grouped[first : first + batch] for row in rows]
            columns = [list(column) for column in zip(*rows, strict=True)]
            async with connection.transaction():
                await connection.execute(INSERT_UNNEST, *columns)
        return time.perf_counter() - started
    finally:
        await connection.close()


async def time_copy(dsn: str, grouped: list[list[tuple[Any, ...]]]) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        records = [row for rows in grouped for row in rows]
        started = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table(
                "essay_student_associations", records=records, columns=COLUMNS
            )
        return time.perf_counter() - started
    finally:
        await connection.close()


async def preload(dsn: str, roster: Roster, rows: int) -> None:
    if rows <= 0:
        return
    connection = await asyncpg.connect(dsn)
    try:
        class_id = roster.classes[0]
        student = roster.students[class_id][0]
        batch = uuid.uuid4()
        for first in range(0, rows, 50_000):
            records = [
                (
                    uuid.uuid4(),
                    uuid.uuid4(),
                    batch,
                    class_id,
                    student,
                    0.5,
                    "[]",
                    "[]",
                    "p.docx",
                    "pending_validation",
                    None,
                    None,
                    None,
                    None,
                    None,
                )
                for _ in range(min(50_000, rows - first))
            ]
            await connection.copy_records_to_table(
                "essay_student_associations", records=records, columns=COLUMNS
            )
        await connection.execute("ANALYZE essay_student_associations")
    finally:
        await connection.close()


async def count_rows(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM essay_student_associations"))
    finally:
        await connection.close()


async def bench(
    args: argparse.Namespace, database_url: str, redis_url: str, bootstrap: str
) -> None:
    dsn = asyncpg_dsn(database_url)
    rng = random.Random(args.seed)
    roster = await seed_roster(dsn)
    await preload(dsn, roster, args.preload)
    base = Settings()
    essays_per_run = args.events * args.essays
    print(
        f"\n{args.events} events x {args.essays} essays x {SUGGESTIONS_PER_ESSAY} suggestions "
        f"= {essays_per_run} essays per run; max_poll_records={base.consumer_max_poll_records}; "
        f"gc.freeze() {'on' if args.gc_freeze else 'off'}"
    )
    header = (
        f"{'run':>3} {'table rows before':>17}  {'method':<42} {'seconds':>8} "
        f"{'essays/s':>10} {'vs COPY':>8}"
    )
    print(header)
    print("-" * len(header))
    for run in range(1, args.runs + 1):
        before = await count_rows(dsn)
        # Only the encoded messages stay in memory while the consumer runs: the harness's own
        # heap must not inflate the consumer's garbage-collection work.
        messages = [
            (body["data"]["batch_id"].encode(), json.dumps(body).encode())
            for body in make_envelopes(roster, args.events, args.essays, rng)
        ]
        values = [value for _, value in messages]
        suffix = uuid.uuid4().hex[:8]
        topic = f"bench.author-matches.{suffix}"
        await produce(bootstrap, topic, messages)
        settings = Settings(
            database_url=database_url,
            redis_url=redis_url,
            kafka_bootstrap_servers=bootstrap,
            author_matches_topic=topic,
            dead_letter_topic=f"{topic}.dlq",
            consumer_group_id=f"bench-{suffix}",
            consumer_fetch_timeout_ms=100,
            consumer_session_timeout_ms=6000,
            consumer_heartbeat_interval_ms=1000,
        )
        if args.gc_freeze:
            gc.collect()
            gc.freeze()
        total, processing = await time_consumer(settings, args.events)
        stored = await count_rows(dsn) - before
        if stored != essays_per_run:
            raise RuntimeError(f"expected {essays_per_run} new rows, found {stored}")

        # Fresh ids per method (built before timing), so each one performs real inserts.
        per_row = await time_per_row(dsn, baseline_rows(values))
        unnest = await time_unnest(dsn, baseline_rows(values), base.consumer_max_poll_records)
        copy = await time_copy(dsn, baseline_rows(values))
        results = [
            ("service consumer (start -> last commit)", total),
            ("service consumer (assigned -> last commit)", processing),
            ("raw asyncpg: INSERT per row", per_row),
            (f"raw asyncpg: unnest per {base.consumer_max_poll_records} events", unnest),
            ("raw asyncpg: COPY", copy),
        ]
        copy_rate = essays_per_run / results[-1][1]
        for name, seconds in results:
            rate = essays_per_run / seconds
            print(
                f"{run:>3} {before:>17}  {name:<42} {seconds:>8.3f} {rate:>10,.0f} "
                f"{rate / copy_rate:>7.0%}"
            )
    print(f"\nrows in essay_student_associations at the end: {await count_rows(dsn)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--essays", type=int, default=30)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--preload", type=int, default=0, help="rows to COPY in before run 1")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() once set up, as a service would after startup (see the report)",
    )
    args = parser.parse_args()

    infra = SessionInfra(infra_root(), log=print)
    try:
        postgres: Any = infra.server("postgres")
        redis_url = infra.server("redis").url
        bootstrap = infra.server("kafka").url
        database = f"cms_bench_{uuid.uuid4().hex[:8]}"
        admin_url = asyncpg_dsn(postgres.url_for("postgres"))

        async def create() -> None:
            connection = await asyncpg.connect(admin_url)
            try:
                await connection.execute(f'CREATE DATABASE "{database}"')
            finally:
                await connection.close()

        async def drop() -> None:
            connection = await asyncpg.connect(admin_url)
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await connection.close()

        asyncio.run(create())
        try:
            database_url: str = postgres.url_for(database)
            runner.upgrade(database_url)
            asyncio.run(bench(args, database_url, redis_url, bootstrap))
        finally:
            asyncio.run(drop())
    finally:
        infra.close()


if __name__ == "__main__":
    main()
