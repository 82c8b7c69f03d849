"""The dead-letter round trip an operator runs, against the real service process and broker:
poison → dead-lettered → `dead-letters list/show` → cause fixed (the class created) →
`dead-letters replay` → stored exactly once; replaying again stores nothing new; `discard`
closes a letter that cannot be fixed."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from class_management_service import db
from class_management_service.settings import Settings
from tests.factories import (
    count_associations,
    encode,
    envelope,
    essay,
    processed_event_ids,
    seed_roster,
)
from tests.service.cli.conftest import CliRunner
from tests.service.conftest import ServiceProcess
from tests.waiting import wait_for


async def _listed(
    service: ServiceProcess, headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    """The letters as the service's internal route lists them (what the CLI changed shows)."""
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
        response = await client.get("/internal/v1/dead-letters", params=params, headers=headers)
    assert response.status_code == 200, response.text
    letters: list[dict[str, Any]] = response.json()["dead_letters"]
    return letters


async def _consumed(service: ServiceProcess, records: int) -> bool:
    """Whether the service's consumer group committed past the source topic's first
    ``records`` records."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=service.setting("kafka_bootstrap_servers"),
        group_id=service.setting("consumer_group_id"),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tp = TopicPartition(service.setting("author_matches_topic"), 0)
        return bool(await consumer.committed(tp) == records)
    finally:
        await consumer.stop()


async def test_a_dead_letter_replayed_after_its_cause_is_fixed_is_stored_exactly_once(
    service_process: ServiceProcess, internal_headers: dict[str, str]
) -> None:
    service = service_process
    cli = CliRunner(service.env)
    class_id, essay_id = uuid.uuid4(), uuid.uuid4()
    body = envelope(class_id, [essay(essay_id, [])])
    producer = AIOKafkaProducer(bootstrap_servers=service.setting("kafka_bootstrap_servers"))
    await producer.start()
    try:
        topic = service.setting("author_matches_topic")
        await producer.send_and_wait(topic, value=encode(body), key=b"batch-key")
        await producer.send_and_wait(topic, value=b"{not json", key=b"junk")
    finally:
        await producer.stop()

    async def both_dead_lettered() -> bool:
        return len(await _listed(service, internal_headers)) == 2

    await wait_for(both_dead_lettered, within=60, every=0.2, what="2 dead letters")
    listed = await cli("dead-letters", "list", "--json")
    assert listed.returncode == 0, listed
    by_reason = {letter["reason"]: letter for letter in listed.json()["dead_letters"]}
    poison, junk = by_reason["unknown_class"], by_reason["invalid_json"]
    assert (poison["original_topic"], poison["original_offset"], poison["key"]) == (
        topic,
        0,
        "batch-key",
    )
    assert poison["location"] == service.setting("dead_letter_topic")
    assert str(class_id) in poison["error"]

    shown, discarded, readable = await asyncio.gather(
        cli("dead-letters", "show", poison["id"]),
        cli("dead-letters", "discard", junk["id"], "--note", "a test's junk"),
        cli("dead-letters", "list", "--reason", "unknown_class", "--since", "1h"),
    )
    assert readable.returncode == 0, readable
    assert readable.stdout.splitlines()[0].startswith(f"{poison['id']}  open  replays=0  ")
    assert readable.stdout.splitlines()[-1] == "1 open dead letter(s)"
    assert shown.returncode == 0, shown
    assert json.loads(shown.json()["value"])["event_id"] == body["event_id"]
    assert shown.json()["value_encoding"] == "utf-8"
    assert discarded.returncode == 0, discarded
    assert [x["id"] for x in await _listed(service, internal_headers)] == [poison["id"]]

    # The cause fixed: the class the event names now exists.
    engine = db.create_engine(Settings(database_url=service.database_url))
    session_factory = db.create_session_factory(engine)
    try:
        await seed_roster(session_factory, class_id=class_id)

        replayed = await cli("dead-letters", "replay", "--reason", "unknown_class")
        assert replayed.returncode == 0, replayed
        assert "1 replayed, 0 skipped" in replayed.stdout
        assert "1/1" in replayed.stderr  # the progress bar's final state

        await wait_for(lambda: _consumed(service, 3), within=30, every=0.2, what="replay 1")
        assert await count_associations(session_factory) == 1
        assert await processed_event_ids(session_factory) == {uuid.UUID(body["event_id"])}
        assert await _listed(service, internal_headers) == []

        # Replaying the same letter again publishes it again; the consumer stores nothing new.
        again, unknown = await asyncio.gather(
            cli("dead-letters", "replay", poison["id"]),
            cli("dead-letters", "show", "db:00000000-0000-0000-0000-000000000000"),
        )
        assert again.returncode == 0, again
        assert f"replayed {poison['id']}" in again.stdout
        assert unknown.returncode == 1
        assert "no dead letter" in unknown.stderr
        # Offsets: the poison, the junk, replay 1, replay 2.
        await wait_for(lambda: _consumed(service, 4), within=30, every=0.2, what="replay 2")
        assert await count_associations(session_factory) == 1
        assert await processed_event_ids(session_factory) == {uuid.UUID(body["event_id"])}
    finally:
        await engine.dispose()

    closed = {x["id"]: x for x in await _listed(service, internal_headers, status="all")}
    assert (closed[poison["id"]]["status"], closed[poison["id"]]["replay_count"]) == (
        "replayed",
        2,
    )
    assert (closed[junk["id"]]["status"], closed[junk["id"]]["note"]) == (
        "discarded",
        "a test's junk",
    )
