"""The real service process: migrate, consume an event from Kafka, serve it over HTTP, stop.

Started exactly as operators run it (``python -m class_management_service run``) with only
environment variables, on a fresh empty database that the run command migrates.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from class_management_service import db
from class_management_service.settings import Settings
from tests.factories import encode, envelope, essay, seed_roster
from tests.service.conftest import ServiceProcess
from tests.waiting import wait_for


async def _get_association(
    client: httpx.AsyncClient, essay_id: uuid.UUID, headers: dict[str, str], within: float = 20.0
) -> dict[str, Any]:
    body: dict[str, Any] = {}

    async def stored() -> bool:
        nonlocal body
        response = await client.get(f"/internal/v1/associations/essay/{essay_id}", headers=headers)
        assert response.status_code in (200, 404), response.text
        body = response.json()
        return response.status_code == 200

    await wait_for(stored, within=within, every=0.1, what=f"essay {essay_id} to be stored")
    return body


async def test_event_in_kafka_is_served_over_http_and_sigterm_stops_cleanly(
    service_process: ServiceProcess, internal_headers: dict[str, str]
) -> None:
    service = service_process
    env = service.env

    # Roster written straight into the database the service has just migrated.
    engine = db.create_engine(Settings(database_url=service.database_url))
    try:
        roster = await seed_roster(db.create_session_factory(engine))
    finally:
        await engine.dispose()
    matched, unmatched = uuid.uuid4(), uuid.uuid4()
    best = roster.student_ids[1]
    body = envelope(
        roster.class_id,
        [
            essay(matched, [(roster.student_ids[0], 0.55), (best, 0.91)]),
            essay(unmatched, []),
        ],
    )

    producer = AIOKafkaProducer(
        bootstrap_servers=env["CLASS_MANAGEMENT_SERVICE_KAFKA_BOOTSTRAP_SERVERS"]
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            env["CLASS_MANAGEMENT_SERVICE_AUTHOR_MATCHES_TOPIC"],
            value=encode(body),
            key=str(body["data"]["batch_id"]).encode(),
        )
    finally:
        await producer.stop()

    async with httpx.AsyncClient(base_url=service.base_url, timeout=5.0) as client:
        stored = await _get_association(client, matched, internal_headers)
        assert stored["student_id"] == str(best)
        assert stored["status"] == "pending_validation"
        assert stored["confidence_score"] == pytest.approx(0.91)
        assert stored["batch_id"] == body["data"]["batch_id"]
        assert stored["class_id"] == str(roster.class_id)
        no_match = await _get_association(client, unmatched, internal_headers)
        assert no_match["status"] == "no_match"
        assert no_match["student_id"] is None

        health = await client.get("/healthz")
        assert health.status_code == 200, health.text
        report = health.json()
        consumer = report["dependencies"]["kafka_consumer"]
        assert consumer["status"] == "ok"
        assert consumer["assigned_partitions"] == [0]
        assert consumer["committed_offsets"] == {"0": 1}
        assert report["workers"]["author_match_consumer"]["status"] == "ok"

        metrics = (await client.get("/metrics")).text
        assert "kafka_consumer_messages_processed_total" in metrics
        assert "kafka_consumer_lag" in metrics

    exit_code = await service.terminate()
    log = service.log_lines()
    messages = [entry.get("message") for entry in log]
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done; the CLI has to
    # turn that into exit status 0 (otherwise: -15 although the shutdown was clean).
    assert exit_code == 0, f"exit status {exit_code}\n{service.log_tail()}"
    assert "consumer left group" in messages, service.log_tail()
    assert "service stopped" in messages, service.log_tail()
    # Our own code logged no error (aiokafka may log while a fresh broker creates the topic).
    own_errors = [
        entry
        for entry in log
        if entry.get("level") in {"error", "critical"}
        and str(entry.get("logger", "")).startswith(("class_management_service", "uvicorn"))
    ]
    assert not own_errors, service.log_tail()
