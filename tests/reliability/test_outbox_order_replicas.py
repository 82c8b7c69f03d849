"""Three replicas, each with its outbox relay, under concurrent writes of the same aggregates
(issue 12 row 8): every aggregate's events reach Kafka in commit order.

* 30 concurrent renames of each of 8 classes, spread over the three replicas: Kafka's last
  ``ClassUpdatedV1`` per class names what the database holds (the rows used to be published in
  transaction-start order: 7 of 8 classes ended on another name).
* Sequential updates of 10 students, each through another replica than the one before: every
  student's updates arrive in the order they were made (one arrived v2 before v1).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from typing import Any

import httpx

from class_management_service.messaging import topics
from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport
from tests.reliability.harness import (
    TEACHER,
    connection,
    fetchval,
    read_topic,
    seed_rosters,
    wait_until,
)

CLASSES = 8
RENAMES = 30
STUDENTS = 10
VERSIONS = 10


async def test_three_replicas_publish_every_aggregates_events_in_commit_order(
    fleet: Fleet, fault_database: str, kafka_bootstrap: str, reliability_report: ReliabilityReport
) -> None:
    rosters = await seed_rosters(fault_database, classes=CLASSES, students=1)
    class_ids = [str(roster.class_id) for roster in rosters]
    await fleet.create_topics(1)
    replicas = await asyncio.gather(
        *(fleet.start(f"replica-{i}", consuming=False) for i in range(3))
    )
    headers = {"X-User-ID": TEACHER}
    clients = [httpx.AsyncClient(base_url=r.base_url, timeout=30.0) for r in replicas]
    try:
        started = time.monotonic()
        renames = await asyncio.gather(
            *(
                clients[(n + i) % 3].put(
                    f"/v1/classes/{class_id}", json={"name": f"v{n:02d}"}, headers=headers
                )
                for n in range(RENAMES)
                for i, class_id in enumerate(class_ids)
            )
        )
        assert Counter(r.status_code for r in renames) == {200: RENAMES * CLASSES}

        student_ids = []
        for i in range(STUDENTS):
            created = await clients[i % 3].post(
                "/v1/classes/students",
                json={"person_name": {"first_name": "v00", "last_name": f"Student{i}"}},
                headers=headers,
            )
            assert created.status_code == 201, created.text
            student_ids.append(created.json()["id"])
        for version in range(1, VERSIONS + 1):
            for i, student_id in enumerate(student_ids):
                updated = await clients[(version + i) % 3].put(
                    f"/v1/classes/students/{student_id}",
                    json={
                        "person_name": {"first_name": f"v{version:02d}", "last_name": f"Student{i}"}
                    },
                    headers=headers,
                )
                assert updated.status_code == 200, updated.text
    finally:
        for client in clients:
            await client.aclose()

    async def outbox_drained() -> bool:
        pending = await fetchval(
            fault_database, "SELECT count(*) FROM outbox_events WHERE status <> 'published'"
        )
        return bool(pending == 0)

    drained_at = await wait_until(
        outbox_drained, within=60, what="every outbox event published", services=fleet.all
    )

    async with connection(fault_database) as conn:
        names = {str(r["id"]): r["name"] for r in await conn.fetch("SELECT id, name FROM classes")}
    class_events = _by_key(await read_topic(kafka_bootstrap, topics.CLASS_UPDATED), class_ids)
    student_events = _by_key(await read_topic(kafka_bootstrap, topics.STUDENT_UPDATED), student_ids)

    wrong_classes = [
        class_id
        for class_id in class_ids
        if not class_events[class_id]
        or class_events[class_id][-1]["data"]["class_designation"] != names[class_id]
    ]
    out_of_order = []
    for student_id in student_ids:
        seen = [int(e["data"]["first_name"][1:]) for e in student_events[student_id]]
        if seen != sorted(seen) or set(seen) != set(range(1, VERSIONS + 1)):
            out_of_order.append((student_id, seen))
    all_events = [
        e for events in (*class_events.values(), *student_events.values()) for e in events
    ]
    duplicates = len(all_events) - len({e["event_id"] for e in all_events})
    assert not wrong_classes, {
        c: (names[c], [e["data"]["class_designation"] for e in class_events[c]][-3:])
        for c in wrong_classes
    }
    assert not out_of_order, out_of_order
    assert sum(len(class_events[c]) for c in class_ids) >= RENAMES * CLASSES

    sent = RENAMES * CLASSES + STUDENTS * VERSIONS
    reliability_report.record_fault(
        FaultRow(
            fault="30 concurrent renames, 3 replicas",
            events_sent=sent,
            rows_expected=CLASSES + STUDENTS,
            rows_found=CLASSES + STUDENTS - len(wrong_classes) - len(out_of_order),
            duplicates=duplicates,
            dead_lettered=0,
            recovery="n/a",
            notes=(
                f"{RENAMES} concurrent renames of each of {CLASSES} classes and {VERSIONS} "
                f"sequential updates of each of {STUDENTS} students over 3 replicas (3 relays); "
                f"rows = aggregates whose Kafka order is the commit order (last class name = "
                f"the database's; student versions ascending): {len(wrong_classes)} classes "
                f"and {len(out_of_order)} students wrong; every event on Kafka "
                f"{drained_at - started:.1f} s after the first write"
            ),
        )
    )


def _by_key(records: list[Any], keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The envelopes of ``keys`` (other tests share the topic) in Kafka's order per key."""
    wanted = set(keys)
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        key = record.key.decode()
        if key in wanted:
            found[key].append(json.loads(record.value))
    return found
