"""Three replicas (separate processes, same database, same consumer group) on a 6-partition topic.

* Kafka's group protocol spreads the partitions over the replicas (each one's /metrics shows
  ``kafka_consumer_assigned_partitions`` > 0, 6 in all).
* One replica is killed (-9) mid-stream: after the session timeout its partitions move to the
  other two, which resume from the committed offsets: nothing lost, nothing duplicated.
* It comes back, and the outbox relays and timeout monitors of all three run at once: the
  validation timeout (tiny here) finalizes every batch, and each batch's
  StudentAssociationsConfirmedV1 is published exactly once.

The timeout is 0.002 h (~7 s) rather than ~1 s so that no batch is finalized before the kill: a
replica killed between publishing an outbox event and marking it published would (by design:
at-least-once) have it re-sent after the lease, which is a second message with the same event id,
not the double publishing this test is about.
"""

from __future__ import annotations

import asyncio
import time

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport
from tests.reliability.harness import (
    CONFIRMED_TOPIC,
    FaultMidStream,
    StreamProducer,
    association_count,
    confirmed_messages,
    connection,
    fetchval,
    metric,
    metrics_text,
    per_batch,
    seeded_stream,
    verify,
    wait_for_rows,
    wait_until,
)
from tests.service_process import ServiceProcess

PARTITIONS = 6
THRESHOLD = 0.7  # the default timeout confidence threshold
REPLICA_SETTINGS = {
    "validation_timeout_hours": "0.002",
    "timeout_monitor_interval_seconds": "0.3",
}


async def _assigned(service: ServiceProcess, topic: str) -> int:
    return int(
        metric(await metrics_text(service), "kafka_consumer_assigned_partitions", topic=topic)
    )


async def test_three_replicas_share_partitions_survive_a_kill_and_publish_each_batch_once(
    fleet: Fleet,
    fault_database: str,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    # 200 batches of 10 essays (2,000 rows) over 6 partitions: ~67 batches for each of the three
    # monitors and relays to finalize and publish. Finalizing is an ORM transaction per batch,
    # which made 400 batches most of this test's time (44 of 76 s at load 7).
    stream = await seeded_stream(fault_database, events=200, essays_per_event=10)
    total = len(stream.expected)
    topic = fleet.setting("author_matches_topic")
    await fleet.create_topics(PARTITIONS)
    names = ("a", "b", "c")
    await asyncio.gather(
        *(fleet.start(name, consuming=False, **REPLICA_SETTINGS) for name in names)
    )

    spread: dict[str, int] = {}

    async def balanced(among: tuple[str, ...]) -> bool:
        for name in among:
            spread[name] = await _assigned(fleet.processes[name], topic)
        return all(spread[n] > 0 for n in among) and sum(spread[n] for n in among) == PARTITIONS

    await wait_until(
        lambda: balanced(names),
        within=60,
        what="6 partitions over 3 replicas",
        services=fleet.all,
    )
    initial = "/".join(str(spread[n]) for n in names)

    kill_c_while_busy = FaultMidStream(stream, fleet.processes["c"].kill)

    async with StreamProducer(kafka_bootstrap) as producer:
        sending = asyncio.create_task(
            producer.stream(topic, stream.messages, pause=0.1, after_chunk=kill_c_while_busy)
        )
        await kill_c_while_busy.wait()
        killed_at = time.monotonic()
        rows_at_kill = await association_count(fault_database)
        assert rows_at_kill is not None
        assert rows_at_kill < total
        moved_at = await wait_until(
            lambda: balanced(("a", "b")),
            within=60,
            what="c's partitions moved to a and b",
            services=fleet.all,
        )
        survivors = "/".join(str(spread[n]) for n in ("a", "b"))
        await sending
    await fleet.restart("c")
    await wait_until(
        lambda: balanced(names), within=60, what="c back in the group", services=fleet.all
    )
    await wait_for_rows(fault_database, total, within=90, services=fleet.all)

    # Every batch is overdue after ~7 s: the three monitors finalize them, the three relays
    # publish the events.
    async def all_finalized_and_published() -> bool:
        async with connection(fault_database) as conn:
            finalized = await conn.fetchval("SELECT count(*) FROM batch_confirmations")
            unpublished = await conn.fetchval(
                "SELECT count(*) FROM outbox_events WHERE status <> 'published'"
            )
        return int(finalized) == len(stream.batch_ids) and unpublished == 0

    await wait_until(
        all_finalized_and_published,
        within=120,
        what="every batch finalized and published",
        services=fleet.all,
    )
    # One StudentAssociationsConfirmedV1 per batch (teacher notifications are rows of their own).
    confirmed_rows = await fetchval(
        fault_database, "SELECT count(*) FROM outbox_events WHERE topic = $1", CONFIRMED_TOPIC
    )
    assert confirmed_rows == len(stream.batch_ids)

    verdict = await verify(fault_database, stream, timed_out_at=THRESHOLD)
    assert verdict.exact, verdict.describe()

    messages = await confirmed_messages(kafka_bootstrap, stream.batch_ids)
    counts = per_batch(messages)
    assert set(counts) == stream.batch_ids, f"{len(stream.batch_ids - set(counts))} missing"
    published_twice = {str(b): n for b, n in counts.items() if n > 1}
    assert not published_twice, published_twice
    assert all(m.timeout_triggered for m in messages)

    texts = {name: await metrics_text(fleet.processes[name]) for name in names}
    finalized_by = {
        n: int(metric(t, "association_timeout_batches_total")) for n, t in texts.items()
    }
    published_by = {
        n: int(metric(t, "outbox_published_total", topic=CONFIRMED_TOPIC)) for n, t in texts.items()
    }
    assert sum(finalized_by.values()) == len(stream.batch_ids), finalized_by
    assert sum(published_by.values()) == len(stream.batch_ids), published_by

    session_timeout_ms = int(fleet.setting("consumer_session_timeout_ms"))
    reliability_report.record_fault(
        FaultRow.of_stream(
            "3 replicas, one killed",
            stream,
            verdict,
            recovery=f"{moved_at - killed_at:.1f} s",
            notes=(
                f"6 partitions spread {initial}; replica c killed at {rows_at_kill:,} rows, its "
                f"partitions moved to a/b ({survivors}); recovery = kill to partitions moved "
                f"(session timeout {session_timeout_ms / 1000:g} s); c restarted; the 3 monitors "
                f"finalized "
                f"{'/'.join(str(finalized_by[n]) for n in names)} batches and the 3 relays "
                f"published {'/'.join(str(published_by[n]) for n in names)} events: "
                f"{len(messages)} StudentAssociationsConfirmedV1 for {len(counts)} batches"
            ),
        )
    )
