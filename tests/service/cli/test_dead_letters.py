"""The dead-letter round trip an operator runs, against the real service process and broker:
poison → dead-lettered → `dead-letters list/show` → cause fixed (the class created) →
`dead-letters replay` → stored exactly once; replaying again stores nothing new; `discard`
closes a letter that cannot be fixed."""

from __future__ import annotations

import json
import uuid
from typing import Any

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


async def _letters(cli: CliRunner, *args: str) -> list[dict[str, Any]]:
    finished = await cli("dead-letters", "list", "--json", *args)
    assert finished.returncode == 0, finished
    letters: list[dict[str, Any]] = finished.json()["dead_letters"]
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
    service_process: ServiceProcess,
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

    letters: list[dict[str, Any]] = []

    async def both_dead_lettered() -> bool:
        nonlocal letters
        letters = await _letters(cli)
        return len(letters) == 2

    await wait_for(both_dead_lettered, within=60, every=0.5, what=lambda: f"2 letters: {letters}")
    by_reason = {letter["reason"]: letter for letter in letters}
    poison, junk = by_reason["unknown_class"], by_reason["invalid_json"]
    assert (poison["original_topic"], poison["original_offset"], poison["key"]) == (
        topic,
        0,
        "batch-key",
    )
    assert poison["location"] == service.setting("dead_letter_topic")
    assert str(class_id) in poison["error"]

    shown = await cli("dead-letters", "show", poison["id"])
    assert shown.returncode == 0, shown
    assert json.loads(shown.json()["value"])["event_id"] == body["event_id"]
    assert shown.json()["value_encoding"] == "utf-8"

    discarded = await cli("dead-letters", "discard", junk["id"], "--note", "a test's junk")
    assert discarded.returncode == 0, discarded
    assert [x["id"] for x in await _letters(cli, "--reason", "invalid_json")] == []

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
        assert await _letters(cli) == []

        # Replaying the same letter again publishes it again; the consumer stores nothing new.
        again = await cli("dead-letters", "replay", poison["id"])
        assert again.returncode == 0, again
        assert f"replayed {poison['id']}" in again.stdout

        # Offsets: the poison, the junk, replay 1, replay 2.
        await wait_for(lambda: _consumed(service, 4), within=30, every=0.2, what="replay 2")
        assert await count_associations(session_factory) == 1
        assert await processed_event_ids(session_factory) == {uuid.UUID(body["event_id"])}
    finally:
        await engine.dispose()

    closed = {x["id"]: x for x in await _letters(cli, "--status", "all")}
    assert (closed[poison["id"]]["status"], closed[poison["id"]]["replay_count"]) == (
        "replayed",
        2,
    )
    assert (closed[junk["id"]]["status"], closed[junk["id"]]["note"]) == (
        "discarded",
        "a test's junk",
    )
    unknown = await cli("dead-letters", "show", "db:00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 1
    assert "no dead letter" in unknown.stderr
