"""Teacher review flow: batches of 30 essays confirmed per second through the HTTP API.

    uv run python -m bench --only review [--quick]

Seeds batches of 30 pending associations (``bench/bench_review_flow.py``), then confirms whole
batches with ``POST /v1/batches/{id}/student-associations/confirm`` (the app in-process, over
httpx's ASGI transport, 4 requests in flight): each call locks the batch, records 30 decisions,
finalizes the batch (``batch_confirmations`` row and the ``StudentAssociationsConfirmedV1``
outbox row in the same transaction) and answers the batch's review list. The baseline does the
same writes with raw asyncpg (lock the rows, one UPDATE, the confirmation and outbox INSERTs,
one transaction per batch, 4 connections), so the ratio is what validation, decisions, the ORM
and the HTTP layer add to the database's own work.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import bench_review_flow
from bench.harness import Harness, Stats, progress, run_async
from bench.report import Section, Table, Target, bar_chart, ratio, stats_cells
from class_management_service.bootstrap import build_app
from class_management_service.db import asyncpg_dsn
from class_management_service.settings import Settings

CONCURRENCY = 4
ESSAYS = 30
SERVICE = "HTTP confirm (+ finalize, outbox)"
RAW = "raw asyncpg: same writes"

LOCK = "SELECT id FROM essay_student_associations WHERE batch_id = $1 ORDER BY id FOR UPDATE"
UPDATE = (
    "UPDATE essay_student_associations SET status = 'confirmed', validation_method = 'human', "
    "validated_by = $2, validated_at = now(), updated_at = now() WHERE batch_id = $1"
)
CONFIRMATION = (
    "INSERT INTO batch_confirmations (batch_id, class_id, timeout_triggered, event_id, "
    "confirmed_at) SELECT $1, class_id, false, $2, now() FROM essay_student_associations "
    "WHERE batch_id = $1 LIMIT 1"
)
OUTBOX = (
    "INSERT INTO outbox_events (id, aggregate_type, aggregate_id, topic, event_type, "
    "message_key, envelope, headers) VALUES ($1, 'batch', $2, 'bench.topic', "
    "'StudentAssociationsConfirmedV1', $2, $3::jsonb, '{}'::jsonb)"
)


@dataclass
class ReviewResults:
    batches_per_repetition: int
    seconds: dict[str, list[float]]

    def rates(self, name: str) -> Stats:
        return Stats.of([self.batches_per_repetition / s for s in self.seconds[name]])


def _settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url="redis://127.0.0.1:1/0",
        kafka_bootstrap_servers="127.0.0.1:1",
        run_consumer=False,
        run_outbox_relay=False,
        run_timeout_monitor=False,
    )


async def _gather_limited(jobs: list[Any]) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def run(job: Any) -> None:
        async with semaphore:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


async def time_http(client: httpx.AsyncClient, batches: list[tuple[uuid.UUID, list[Any]]]) -> float:
    headers = {"X-User-ID": bench_review_flow.TEACHER}

    def job(batch_id: uuid.UUID, pairs: list[Any]) -> Any:
        body = bench_review_flow.confirm_body(pairs)

        async def post() -> None:
            response = await client.post(
                f"/v1/batches/{batch_id}/student-associations/confirm", json=body, headers=headers
            )
            assert response.status_code == 200, response.text[:300]
            assert response.json()["finalized"], response.text[:300]

        return post

    started = time.perf_counter()
    await _gather_limited([job(batch_id, pairs) for batch_id, pairs in batches])
    return time.perf_counter() - started


async def time_raw(dsn: str, batches: list[tuple[uuid.UUID, list[Any]]]) -> float:
    connections = [await asyncpg.connect(dsn) for _ in range(CONCURRENCY)]
    free = asyncio.Queue[asyncpg.Connection]()
    for connection in connections:
        free.put_nowait(connection)

    def job(batch_id: uuid.UUID, pairs: list[Any]) -> Any:
        # An event of the same size as the service's (30 associations), built before timing.
        envelope = json.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "data": {
                    "batch_id": str(batch_id),
                    "associations": [
                        {"essay_id": str(e), "student_id": str(s), "confidence_score": 0.8}
                        for e, s in pairs
                    ],
                },
            }
        )

        async def write() -> None:
            connection = await free.get()
            try:
                async with connection.transaction():
                    await connection.fetch(LOCK, batch_id)
                    await connection.execute(UPDATE, batch_id, bench_review_flow.TEACHER)
                    await connection.execute(CONFIRMATION, batch_id, uuid.uuid4())
                    await connection.execute(OUTBOX, uuid.uuid4(), str(batch_id), envelope)
            finally:
                free.put_nowait(connection)

        return write

    jobs = [job(batch_id, pairs) for batch_id, pairs in batches]
    try:
        started = time.perf_counter()
        await _gather_limited(jobs)
        return time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()


async def _measure(database_url: str, per_repetition: int, repetitions: int) -> ReviewResults:
    settings = _settings(database_url)
    # Twice the batches: one half for the HTTP API, one for the raw baseline.
    seeded = await bench_review_flow.seed(settings, 2 * per_repetition * repetitions, ESSAYS)
    app = build_app(settings)
    results = ReviewResults(per_repetition, {SERVICE: [], RAW: []})
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for repetition in range(repetitions):
                first = 2 * repetition * per_repetition
                http_batches = seeded[first : first + per_repetition]
                raw_batches = seeded[first + per_repetition : first + 2 * per_repetition]
                results.seconds[SERVICE].append(await time_http(client, http_batches))
                results.seconds[RAW].append(await time_raw(asyncpg_dsn(database_url), raw_batches))
                progress(
                    f"review {repetition + 1}/{repetitions}: HTTP "
                    f"{per_repetition / results.seconds[SERVICE][-1]:,.0f} batches/s, raw "
                    f"{per_repetition / results.seconds[RAW][-1]:,.0f} batches/s"
                )
    finally:
        await app.state.container.engine.dispose()
    return results


def measure(harness: Harness, *, quick: bool, repetitions: int) -> ReviewResults:
    per_repetition = 20 if quick else 100
    database_url = harness.new_database("bench_review")
    return run_async(_measure(database_url, per_repetition, repetitions))


def section(results: ReviewResults) -> Section:
    intro = f"""
Whole batches of {ESSAYS} essays confirmed through the HTTP API (the app in-process over
httpx's ASGI transport, {CONCURRENCY} requests in flight, {results.batches_per_repetition}
batches per repetition): lock, decide, write the 30 decisions, finalize the batch with its
`StudentAssociationsConfirmedV1` outbox row, answer the review list, commit. Baseline: the same
writes in raw asyncpg (rows locked, one UPDATE, the confirmation and outbox INSERTs; one
transaction per batch, {CONCURRENCY} connections).
"""
    section_ = Section("review", "Review flow: batches confirmed per second", intro)
    raw = results.rates(RAW)
    table = Table(["path", "min batches/s", "median", "max", "vs raw", "essays/s (median)"])
    for name in (SERVICE, RAW):
        rates = results.rates(name)
        table.rows.append(
            [
                name,
                *stats_cells(rates, 1),
                ratio(rates.ratio_to(raw)),
                f"{rates.median * ESSAYS:,.0f}",
            ]
        )
    section_.tables.append(("", table))
    section_.targets.append(
        Target(
            "batches of 30 confirmed per second (no fixed target; vs raw SQL)",
            results.rates(SERVICE),
            "batches/s",
            baseline=raw,
            digits=1,
        )
    )

    def draw(path: Path) -> None:
        bar_chart(
            path,
            title="Batches of 30 confirmed per second (median, min-max whiskers)",
            ylabel="batches/s",
            labels=[SERVICE, RAW],
            series=[("batches/s", [results.rates(SERVICE), raw])],
        )

    section_.plots.append(("review_flow.png", "Review flow batches per second", draw))
    return section_
