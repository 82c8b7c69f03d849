"""Poison mixed into the stream: non-JSON, schema-invalid, unknown class, non-UUID batch id.

Each poison message must land in the dead-letter topic exactly as it came (same key and value)
with the reason and its origin in headers; every good event around it must still be stored.
"""

from __future__ import annotations

import time
from collections import Counter

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport
from tests.reliability.harness import (
    StreamProducer,
    end_offsets,
    header,
    metric,
    metrics_text,
    read_topic,
    seeded_stream,
    verify,
    wait_for_rows,
    wait_until,
)


async def test_poison_is_dead_lettered_with_its_reason_and_every_good_event_is_stored(
    fleet: Fleet,
    fault_database: str,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    stream = await seeded_stream(fault_database, poison_every=20)
    poison = stream.poison
    kinds = Counter(m.poison_reason for m in poison)
    assert set(kinds) == {"invalid_json", "schema_invalid", "unknown_class", "malformed_id"}
    total = len(stream.expected)
    topic, dlq = fleet.setting("author_matches_topic"), fleet.setting("dead_letter_topic")
    await fleet.create_topics(3)
    service = await fleet.start()

    started = time.monotonic()
    async with StreamProducer(kafka_bootstrap) as producer:
        await producer.stream(topic, stream.messages, chunk=40, pause=0.05)
    await wait_for_rows(fault_database, total, within=90, services=fleet.all)

    async def all_dead_lettered() -> bool:
        return sum((await end_offsets(kafka_bootstrap, dlq)).values()) >= len(poison)

    await wait_until(
        all_dead_lettered, within=30, what=f"{len(poison)} dead letters", services=fleet.all
    )
    elapsed = time.monotonic() - started

    letters = await read_topic(kafka_bootstrap, dlq)
    assert len(letters) == len(poison), f"{len(letters)} dead letters for {len(poison)} poison"
    by_origin = {(m.partition, m.offset): m for m in poison}
    for letter in letters:
        origin = (
            int(header(letter, "dlq_original_partition") or -1),
            int(header(letter, "dlq_original_offset") or -1),
        )
        message = by_origin.pop(origin, None)
        assert message is not None, f"unexpected dead letter from {origin}"
        assert header(letter, "dlq_reason") == message.poison_reason, header(letter, "dlq_error")
        assert header(letter, "dlq_original_topic") == topic
        assert header(letter, "dlq_consumer_group") == fleet.setting("consumer_group_id")
        assert (letter.key, letter.value) == (message.key, message.value)
    assert not by_origin, f"poison not dead-lettered: {sorted(by_origin)}"

    verdict = await verify(fault_database, stream)
    assert verdict.exact, verdict.describe()
    text = await metrics_text(service)
    assert metric(text, "kafka_consumer_messages_dead_lettered_total") == len(poison)
    assert metric(text, "kafka_consumer_batch_failures_total") == 0, "poison is not a failure"

    reliability_report.record_fault(
        FaultRow.of_stream(
            "poison mixed in",
            stream,
            verdict,
            dead_lettered=len(letters),
            recovery="none needed",
            notes=(
                ", ".join(f"{n} {reason}" for reason, n in sorted(kinds.items()))
                + f", each in the DLQ with its reason header and original key/value; "
                f"no batch retried; stream stored and dead-lettered in {elapsed:.1f} s"
            ),
        )
    )
