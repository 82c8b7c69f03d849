"""The dead-letter tooling over the internal HTTP route, against the real broker: a letter of the
dead-letter topic round-trips (poison → cause fixed → replay → stored once, again → nothing new),
letters of the ``dead_letters`` table are shown, discarded and replayed by filter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.bootstrap import build_container
from class_management_service.container import Container
from class_management_service.messaging.dead_letter import DeadLetter
from class_management_service.messaging.dead_letter_store import DeadLetterStore
from class_management_service.settings import Settings
from tests.factories import (
    count_associations,
    encode,
    envelope,
    essay,
    processed_event_ids,
    seed_roster,
)
from tests.http_helpers import app_client
from tests.kafka.topics import consumer_settings, read_topic
from tests.waiting import wait_for

ROUTE = "/internal/v1/dead-letters"


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings],
    unique_name: Callable[[str], str],
    kafka_bootstrap: str,
    redis_url: str,
) -> Settings:
    return consumer_settings(
        make_settings,
        unique_name,
        kafka_bootstrap_servers=kafka_bootstrap,
        redis_url=redis_url,
        run_consumer=True,
    )


@pytest.fixture
async def consuming(settings: Settings) -> AsyncIterator[Container]:
    """The author-match consumer running in-process on this test's topics."""
    container = build_container(settings)
    container.supervisor.start()
    try:
        yield container
    finally:
        await container.supervisor.stop()
        await container.close()


async def test_a_topic_letter_replayed_over_http_after_the_fix_is_stored_exactly_once(
    settings: Settings,
    consuming: Container,
    session_factory: async_sessionmaker[AsyncSession],
    internal_headers: dict[str, str],
) -> None:
    class_id = uuid.uuid4()
    body = envelope(class_id, [essay(uuid.uuid4(), [])])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(settings.author_matches_topic, value=encode(body), key=b"k")
    finally:
        await producer.stop()
    [worker] = consuming.supervisor.workers
    committed: dict[TopicPartition, int] = worker.progress.committed  # type: ignore[attr-defined]
    source = TopicPartition(settings.author_matches_topic, 0)

    async with app_client(settings) as client:
        letters: list[dict[str, Any]] = []

        async def dead_lettered() -> bool:
            nonlocal letters
            response = await client.get(ROUTE, headers=internal_headers)
            assert response.status_code == 200, response.text
            letters = response.json()["dead_letters"]
            return len(letters) == 1

        await wait_for(dead_lettered, within=30, every=0.2, what="the poison dead-lettered")
        [letter] = letters
        assert (letter["reason"], letter["status"], letter["replay_count"]) == (
            "unknown_class",
            "open",
            0,
        )
        await seed_roster(session_factory, class_id=class_id)

        for replays in (1, 2):
            response = await client.post(f"{ROUTE}/{letter['id']}/replay", headers=internal_headers)
            assert response.status_code == 200, response.text
            assert response.json() == {"replayed": [letter["id"]], "skipped": []}
            # The poison, then each replay.
            await wait_for(_committed_to(committed, source, 1 + replays), within=30)
            assert await count_associations(session_factory) == 1
            assert await processed_event_ids(session_factory) == {uuid.UUID(body["event_id"])}

        assert (await client.get(ROUTE, headers=internal_headers)).json()["count"] == 0
        shown = await client.get(f"{ROUTE}/{letter['id']}", headers=internal_headers)
        assert (shown.json()["status"], shown.json()["replay_count"]) == ("replayed", 2)


def _committed_to(
    committed: dict[TopicPartition, int], tp: TopicPartition, offset: int
) -> Callable[[], bool]:
    return lambda: committed.get(tp) == offset


def _record(topic: str, offset: int, key: bytes, value: bytes) -> ConsumerRecord[bytes, bytes]:
    headers = [("event_id", b"e-" + key)]
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), headers)


async def test_table_letters_are_shown_discarded_and_replayed_by_filter(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    internal_headers: dict[str, str],
) -> None:
    topic = settings.author_matches_topic
    binary, text = b"\xff\xfe poison", b'{"fixed": true}'
    await DeadLetterStore(session_factory).add(
        [
            DeadLetter(_record(topic, 7, b"bin", binary), "invalid_json", "not UTF-8"),
            DeadLetter(_record(topic, 8, b"txt", text), "schema_invalid", "missing field"),
        ],
        group_id="cms",
    )
    async with app_client(settings) as client:
        listed = (await client.get(ROUTE, headers=internal_headers)).json()
        assert listed["count"] == 2
        by_key = {letter["key"]: letter for letter in listed["dead_letters"]}
        assert {letter["location"] for letter in listed["dead_letters"]} == {"dead_letters"}
        assert by_key["bin"]["id"].startswith("db:")

        shown = (
            await client.get(f"{ROUTE}/{by_key['bin']['id']}", headers=internal_headers)
        ).json()
        assert (shown["value_encoding"], shown["original_offset"]) == ("base64", 7)
        assert shown["headers"] == [{"name": "event_id", "value": "e-bin"}]

        discarded = await client.post(
            f"{ROUTE}/{by_key['bin']['id']}/discard",
            json={"note": "garbage"},
            headers=internal_headers,
        )
        assert discarded.status_code == 200, discarded.text
        assert (discarded.json()["status"], discarded.json()["note"]) == ("discarded", "garbage")

        replayed = await client.post(
            "/internal/v1/dead-letter-replays", params={"topic": topic}, headers=internal_headers
        )
        assert replayed.status_code == 200, replayed.text
        assert replayed.json() == {"replayed": [by_key["txt"]["id"]], "skipped": []}
        again = await client.post("/internal/v1/dead-letter-replays", headers=internal_headers)
        assert again.json() == {"replayed": [], "skipped": []}
        assert (await client.get(ROUTE, headers=internal_headers)).json()["count"] == 0
        everything = (
            await client.get(ROUTE, params={"status": "all"}, headers=internal_headers)
        ).json()
        assert sorted(x["status"] for x in everything["dead_letters"]) == ["discarded", "replayed"]

        missing = await client.get(f"{ROUTE}/db:{uuid.uuid4()}", headers=internal_headers)
        assert missing.status_code == 404
        malformed = await client.get(f"{ROUTE}/nonsense", headers=internal_headers)
        assert malformed.status_code == 400
        assert (await client.get(ROUTE)).status_code == 401

    [published] = await read_topic(settings.kafka_bootstrap_servers, topic, key="txt")
    assert published.envelope == {"fixed": True}
    assert published.headers == {"event_id": "e-txt", "dlq_replay_count": "1"}
