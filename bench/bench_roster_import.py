"""Roster import throughput: a 20,000-row CSV through the real HTTP import, next to raw COPY.

    uv run python -m bench.bench_roster_import [--rows 20000] [--repetitions 3]

Uses the PostgreSQL named by CLASS_MANAGEMENT_SERVICE_DATABASE_URL, or starts a throwaway one
with local_infra. Each repetition imports the file over HTTP (in-process) for a new teacher
into a new class, so every row creates a student, its membership and its StudentCreatedV1
outbox row; then imports the same file again (every row unchanged, nothing written). The
creating import is measured twice: with the default per-row report and with ``rows=rejected``
(what a client uploading big files would ask for). The baseline is asyncpg's
``copy_records_to_table`` of the same rows into ``students`` alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import asyncpg
import httpx

from class_management_service.bootstrap import build_app
from class_management_service.db import asyncpg_dsn
from class_management_service.migrations import runner
from class_management_service.settings import Settings
from local_infra.paths import infra_root
from local_infra.session import SessionInfra

DATABASE = "bench_roster_import"
IMPORT_CREATES = "HTTP import, all created"
IMPORT_CREATES_SHORT_REPORT = "  same, report rows=rejected"
IMPORT_UNCHANGED = "HTTP re-import, all unchanged"
RAW_COPY = "raw asyncpg COPY, students only"
STUDENT_COLUMNS = ("id", "first_name", "last_name", "legal_full_name", "email")


def student_values(index: int) -> tuple[str, str, str, str]:
    first, last = f"First{index}", f"Last{index}"
    return first, last, f"{first} Middle {last}", f"student{index}@school.example"


def roster_csv(rows: int) -> bytes:
    lines = ["first_name,last_name,legal_full_name,email"]
    lines += [",".join(student_values(index)) for index in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class ImportTarget:
    """A new class of a new teacher: where to post the file, and as whom."""

    path: str
    headers: dict[str, str]


async def new_import_target(client: httpx.AsyncClient, report: str) -> ImportTarget:
    teacher = {"X-User-ID": f"bench-teacher-{uuid.uuid4().hex[:8]}"}
    created = await client.post(
        "/v1/classes/", json={"name": "Bench", "course_codes": ["ENG5"]}, headers=teacher
    )
    return ImportTarget(
        path=f"/v1/classes/{created.json()['id']}/students/import?rows={report}",
        headers={**teacher, "Content-Type": "text/csv"},
    )


async def import_seconds(
    client: httpx.AsyncClient, target: ImportTarget, body: bytes, expect: str
) -> float:
    started = time.perf_counter()
    response = await client.post(target.path, content=body, headers=target.headers)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text[:500]
    totals = response.json()["totals"]
    assert totals[expect] == totals["rows"], totals
    return elapsed


async def copy_seconds(connection: asyncpg.Connection, rows: int) -> float:
    teacher_id = f"copy-teacher-{uuid.uuid4().hex[:8]}"
    records = [(uuid.uuid4(), *student_values(index), teacher_id) for index in range(rows)]
    started = time.perf_counter()
    await connection.copy_records_to_table(
        "students", records=records, columns=[*STUDENT_COLUMNS, "created_by_user_id"]
    )
    return time.perf_counter() - started


async def measure(database_url: str, rows: int, repetitions: int) -> dict[str, list[float]]:
    app = build_app(
        Settings(
            database_url=database_url,
            redis_url="redis://127.0.0.1:1/0",
            kafka_bootstrap_servers="127.0.0.1:1",
            run_consumer=False,
            run_outbox_relay=False,
            run_timeout_monitor=False,
            max_request_body_bytes=64 * 1024 * 1024,
        )
    )
    body = roster_csv(rows)
    seconds: dict[str, list[float]] = {
        name: []
        for name in (IMPORT_CREATES, IMPORT_CREATES_SHORT_REPORT, IMPORT_UNCHANGED, RAW_COPY)
    }
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(repetitions):
                for name, report in (
                    (IMPORT_CREATES, "all"),
                    (IMPORT_CREATES_SHORT_REPORT, "rejected"),
                ):
                    target = await new_import_target(client, report)
                    seconds[name].append(await import_seconds(client, target, body, "created"))
                # The last class again: every row is already there.
                seconds[IMPORT_UNCHANGED].append(
                    await import_seconds(client, target, body, "unchanged")
                )
                seconds[RAW_COPY].append(await copy_seconds(connection, rows))
    finally:
        await connection.close()
        await app.state.container.engine.dispose()
        await app.state.container.redis.aclose()
    return seconds


def print_table(rows: int, seconds: dict[str, list[float]]) -> None:
    baseline = statistics.median(rows / value for value in seconds[RAW_COPY])
    print(f"\n{rows:,} rows, {len(seconds[RAW_COPY])} repetitions, students/s\n")
    print(f"{'path':34} {'min':>9} {'median':>9} {'max':>9} {'of COPY':>8}")
    for name, values in seconds.items():
        rates = sorted(rows / value for value in values)
        median = statistics.median(rates)
        print(
            f"{name:34} {rates[0]:>9,.0f} {median:>9,.0f} {rates[-1]:>9,.0f} "
            f"{median / baseline:>8.1%}"
        )


async def recreate_database(admin_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Roster import throughput vs raw COPY.")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repetitions", type=int, default=3)
    arguments = parser.parse_args()
    infra = SessionInfra(infra_root())
    try:
        server = infra.server("postgres")
        url_for = server.url_for  # type: ignore[attr-defined]
        asyncio.run(recreate_database(url_for("postgres")))
        # Alembic runs its own event loop: keep it on a thread of its own.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(runner.upgrade, url_for(DATABASE)).result()
        seconds = asyncio.run(measure(url_for(DATABASE), arguments.rows, arguments.repetitions))
        print_table(arguments.rows, seconds)
    finally:
        infra.close()


if __name__ == "__main__":
    main()
