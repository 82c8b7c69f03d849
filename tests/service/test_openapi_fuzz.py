"""Schemathesis over the whole OpenAPI document, against the real service process.

The command is the documented one (``schemathesis.toml`` at the repository root: every phase,
every check, a fixed seed): examples, coverage (boundary values, missing headers, methods a path
does not serve), fuzzing (schema-valid and schema-violating requests) and the stateful phase
(sequences following the OpenAPI links: create a class or student, then read, update, delete,
import into it), the review operations on a batch the test ingests from Kafka. It fails on any
5xx, any status, content type, header or body the document does not declare, a valid request
refused, an invalid one accepted, a 405 without ``Allow``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from class_management_service import db
from class_management_service.settings import Settings
from tests.factories import encode, envelope, essay, seed_roster
from tests.service.conftest import ServiceProcess
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
MIN_CASES = 5_000
TEACHER = "schemathesis-teacher"  # schemathesis.toml's x-user-id
REVIEW_BATCH = "5c4b1e2a-9d7f-4f3e-8a61-2b7c0d9e4f15"  # schemathesis.toml's batch_id
# Far above the ~60 s the run takes on a loaded 2-core machine; only a hang trips it.
WITHIN = 600.0


async def _schemathesis(service: ServiceProcess, report_path: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "--no-color",
        "run",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
        f"{service.base_url}/openapi.json",
        cwd=ROOT,
        env={
            **os.environ,
            "CLASS_MANAGEMENT_SERVICE_INTERNAL_API_KEY": service.setting("internal_api_key"),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), WITHIN)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def _seed_review_batch(service: ServiceProcess) -> None:
    """The batch the review operations are fuzzed on: ingested from Kafka like any batch, in a
    class of the fuzzing teacher, a few essays with suggestions and one without."""
    engine = db.create_engine(Settings(database_url=service.database_url))
    try:
        roster = await seed_roster(db.create_session_factory(engine), teacher=TEACHER)
    finally:
        await engine.dispose()
    essays = [essay(uuid.uuid4(), [(student, 0.9)]) for student in roster.student_ids]
    body = envelope(roster.class_id, [*essays, essay(uuid.uuid4())], batch_id=REVIEW_BATCH)
    producer = AIOKafkaProducer(bootstrap_servers=service.setting("kafka_bootstrap_servers"))
    await producer.start()
    try:
        await producer.send_and_wait(service.setting("author_matches_topic"), encode(body))
    finally:
        await producer.stop()
    last = ""
    async with httpx.AsyncClient(base_url=service.base_url, timeout=5.0) as client:

        async def ingested() -> bool:
            nonlocal last
            response = await client.get(
                f"/v1/batches/{REVIEW_BATCH}/student-associations", headers={"X-User-ID": TEACHER}
            )
            last = response.text
            return response.status_code == 200

        await wait_for(ingested, within=WITHIN, every=0.1, what=lambda: f"the batch; {last}")


def _load(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    return report


async def test_schemathesis_all_phases_and_checks_find_nothing(
    service_process: ServiceProcess, tmp_path: Path
) -> None:
    await _seed_review_batch(service_process)
    exit_code, output = await _schemathesis(service_process, tmp_path / "report.json")
    where = f"{output}\n--- service log ---\n{service_process.log_tail(60)}"
    assert exit_code == 0, where
    report = _load(tmp_path / "report.json")
    assert report["complete"], where
    assert report["stop_reason"] == "completed", where
    assert report["test_cases"]["with_failures"] == 0, where
    assert report["errors"] == [], where
    assert report["test_cases"]["generated"] >= MIN_CASES, report["test_cases"]
    # The stateful phase ran (not skipped for want of links) and passed.
    assert {name: phase["status"] for name, phase in report["phases"].items()} == {
        "examples": "success",
        "coverage": "success",
        "fuzzing": "success",
        "stateful": "success",
    }, report["phases"]
