"""Benchmark of the review flow: GET review list, POST confirm (finalizing), timeout pass.

Runs against a throw-away database created next to the one named by
``CLASS_MANAGEMENT_SERVICE_DATABASE_URL`` (default: the local dev server) and dropped after.

    uv run python bench/bench_review_flow.py --batches 200 --essays 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

import asyncpg
import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from class_management_service.associations.models import EssayStudentAssociation
from class_management_service.associations.timeout_metrics import TimeoutMetrics
from class_management_service.associations.timeout_monitor import TimeoutMonitor
from class_management_service.bootstrap import build_app
from class_management_service.classes.models import ClassMembership, SchoolClass
from class_management_service.courses.domain import CourseCode
from class_management_service.courses.reference import course_id
from class_management_service.db import asyncpg_dsn
from class_management_service.migrations import runner
from class_management_service.settings import Settings
from class_management_service.students.models import Student

TEACHER = "bench-teacher"


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, n={len(ordered)}"


Seeded = list[tuple[uuid.UUID, list[tuple[uuid.UUID, uuid.UUID]]]]  # (batch, [(essay, student)])


async def seed(settings: Settings, batches: int, essays: int) -> Seeded:
    app = build_app(settings)
    factory = app.state.container.session_factory
    seeded: Seeded = []
    async with factory() as session:
        school_class = SchoolClass(
            name="Bench", created_by_user_id=TEACHER, course_id=course_id(CourseCode.ENG5)
        )
        students = [
            Student(first_name=f"S{i}", last_name="Bench", created_by_user_id=TEACHER)
            for i in range(essays)
        ]
        session.add_all([school_class, *students])
        await session.flush()
        session.add_all(
            ClassMembership(class_id=school_class.id, student_id=s.id) for s in students
        )
        rows = []
        for _ in range(batches):
            batch_id = uuid.uuid4()
            pairs = []
            for student in students:
                essay_id = uuid.uuid4()
                pairs.append((essay_id, student.id))
                rows.append(
                    {
                        "id": uuid.uuid4(),
                        "essay_id": essay_id,
                        "batch_id": batch_id,
                        "class_id": school_class.id,
                        "student_id": student.id,
                        "confidence_score": 0.8,
                        "match_reasons": ["bench"],
                        "filename": f"{essay_id}.docx",
                        "status": "pending_validation",
                    }
                )
            seeded.append((batch_id, pairs))
        await session.execute(insert(EssayStudentAssociation), rows)
        await session.commit()
    await app.state.container.engine.dispose()
    return seeded


def confirm_body(pairs: list[tuple[uuid.UUID, uuid.UUID]]) -> dict[str, list[dict[str, object]]]:
    """A teacher's confirmation of every (essay, suggested student) pair of a batch."""
    return {
        "associations": [
            {"essay_id": str(e), "student_id": str(s), "confirmed": True} for e, s in pairs
        ]
    }


async def _bench(database_url: str, batches: int, essays: int) -> None:
    settings = Settings(
        database_url=database_url,
        run_consumer=False,
        run_outbox_relay=False,
        run_timeout_monitor=False,
        redis_url="redis://127.0.0.1:1/0",
        kafka_bootstrap_servers="127.0.0.1:1",
    )
    started = time.perf_counter()
    seeded = await seed(settings, batches, essays)
    print(f"seeded {batches} batches x {essays} essays in {time.perf_counter() - started:.1f}s")

    app = build_app(settings)
    transport = httpx.ASGITransport(app=app)
    headers = {"X-User-ID": TEACHER}
    half = len(seeded) // 2
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        gets, posts = [], []
        for batch_id, _ in seeded:
            t0 = time.perf_counter()
            response = await client.get(
                f"/v1/batches/{batch_id}/student-associations", headers=headers
            )
            gets.append(time.perf_counter() - t0)
            assert response.status_code == 200
        for batch_id, pairs in seeded[:half]:
            body = confirm_body(pairs)
            t0 = time.perf_counter()
            response = await client.post(
                f"/v1/batches/{batch_id}/student-associations/confirm", json=body, headers=headers
            )
            posts.append(time.perf_counter() - t0)
            assert response.status_code == 200
            assert response.json()["finalized"]
    print(f"GET  review list      {_percentiles(gets)}")
    print(f"POST confirm+finalize {_percentiles(posts)}")

    # The timeout runs on the database's clock: the unconfirmed half is made 25 h old.
    async with app.state.container.session_factory() as session, session.begin():
        await session.execute(
            text(
                "UPDATE essay_student_associations "
                "SET created_at = created_at - interval '25 hours'"
            )
        )
    monitor = TimeoutMonitor(
        session_factory=app.state.container.session_factory,
        settings=settings,
        metrics=TimeoutMetrics(CollectorRegistry()),
    )
    t0 = time.perf_counter()
    outcome = await monitor.run_once()
    elapsed = time.perf_counter() - t0
    print(
        f"timeout pass: {len(outcome.finalized)} batches in {elapsed:.2f}s "
        f"({len(outcome.finalized) / elapsed:.0f} batches/s)"
    )
    await app.state.container.engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--essays", type=int, default=30)
    args = parser.parse_args()
    base = make_url(
        os.environ.get(
            "CLASS_MANAGEMENT_SERVICE_DATABASE_URL",
            "postgresql+asyncpg://cms@127.0.0.1:5432/class_management",
        )
    )
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin_dsn = asyncpg_dsn(base.set(database="postgres").render_as_string(hide_password=False))
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = base.set(database=name).render_as_string(hide_password=False)
        await asyncio.to_thread(runner.upgrade, url)
        await _bench(url, args.batches, args.essays)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
