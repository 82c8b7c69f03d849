"""Building blocks of the fault-injection suite: rosters, event streams, checks, Kafka helpers.

Everything here talks to the servers the way an operator's tool would: plain SQL over fresh
asyncpg connections (so a PostgreSQL restart never leaves the test with a dead pool), aiokafka
clients for topics and consumer-group offsets, HTTP for /healthz and /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from class_management_service.db import asyncpg_dsn
from class_management_service.messaging import topics
from tests.factories import encode, envelope, essay
from tests.service_process import ServiceProcess
from tests.waiting import wait_for

TEACHER = "teacher-reliability"
CONFIRMED_TOPIC = topics.STUDENT_ASSOCIATIONS_CONFIRMED

# ---- PostgreSQL ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def connection(database_url: str) -> Any:
    """A fresh connection per use: survives the server being stopped and started in between."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=5.0)
    try:
        yield conn
    finally:
        await conn.close()


async def fetchval(database_url: str, sql: str, *args: Any) -> Any:
    async with connection(database_url) as conn:
        return await conn.fetchval(sql, *args)


async def fetchval_or_none(database_url: str, sql: str, *args: Any) -> Any:
    """Like :func:`fetchval`, but None while the database cannot be reached."""
    try:
        return await fetchval(database_url, sql, *args)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return None


async def association_count(database_url: str) -> int | None:
    count = await fetchval_or_none(database_url, "SELECT count(*) FROM essay_student_associations")
    return None if count is None else int(count)


@dataclass(frozen=True)
class Roster:
    class_id: uuid.UUID
    student_ids: tuple[uuid.UUID, ...]


async def seed_rosters(
    database_url: str, *, classes: int = 20, students: int = 12, teacher: str = TEACHER
) -> list[Roster]:
    """``classes`` ENG5 classes of ``students`` members each, written with plain SQL."""
    rosters = [
        Roster(uuid.uuid4(), tuple(sorted(uuid.uuid4() for _ in range(students))))
        for _ in range(classes)
    ]
    async with connection(database_url) as conn, conn.transaction():
        course = await conn.fetchval("SELECT id FROM courses WHERE course_code = 'ENG5'")
        await conn.executemany(
            "INSERT INTO classes (id, name, created_by_user_id, course_id) VALUES ($1, $2, $3, $4)",
            [(r.class_id, f"Class {r.class_id.hex[:8]}", teacher, course) for r in rosters],
        )
        await conn.executemany(
            "INSERT INTO students (id, first_name, last_name, email, created_by_user_id)"
            " VALUES ($1, $2, $3, $4, $5)",
            [
                (s, f"First{i}", f"Last{s.hex[:6]}", f"{s.hex[:16]}@example.com", teacher)
                for r in rosters
                for i, s in enumerate(r.student_ids)
            ],
        )
        await conn.executemany(
            "INSERT INTO class_students (class_id, student_id) VALUES ($1, $2)",
            [(r.class_id, s) for r in rosters for s in r.student_ids],
        )
    return rosters


# ---- the event stream ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedEssay:
    essay_id: uuid.UUID
    batch_id: uuid.UUID
    class_id: uuid.UUID
    student_id: uuid.UUID | None  # the class member with the highest confidence; None: no_match
    event_id: uuid.UUID
    confidence: float | None = None  # of that suggestion

    def after_timeout(self, threshold: float) -> tuple[str, uuid.UUID | None]:
        """(status, student) once the validation timeout decided the essay."""
        if self.student_id is not None and (self.confidence or 0.0) >= threshold:
            return "timeout_confirmed", self.student_id
        return "rejected", None


@dataclass
class Message:
    key: bytes
    value: bytes
    event_id: uuid.UUID | None = None  # None for poison that has no readable event id
    batch_id: uuid.UUID | None = None
    poison_reason: str | None = None  # the dlq_reason the service must give it
    partition: int | None = None
    offset: int | None = None


@dataclass
class Stream:
    messages: list[Message]
    expected: dict[uuid.UUID, ExpectedEssay]

    @property
    def good(self) -> list[Message]:
        return [m for m in self.messages if m.poison_reason is None]

    @property
    def poison(self) -> list[Message]:
        return [m for m in self.messages if m.poison_reason is not None]

    @property
    def event_ids(self) -> set[uuid.UUID]:
        return {m.event_id for m in self.good if m.event_id is not None}

    @property
    def batch_ids(self) -> set[uuid.UUID]:
        return {m.batch_id for m in self.good if m.batch_id is not None}

    def essays_of(self, batch_id: uuid.UUID) -> list[ExpectedEssay]:
        return [e for e in self.expected.values() if e.batch_id == batch_id]


def _essay(
    rng: random.Random, roster: Roster, event_id: uuid.UUID, batch_id: uuid.UUID
) -> tuple[dict[str, Any], ExpectedEssay]:
    essay_id = uuid.uuid4()
    suggestions: list[tuple[uuid.UUID, float]] = []
    if rng.random() >= 0.1:  # one essay in ten: no author found at all
        members = rng.sample(roster.student_ids, rng.randint(1, 3))
        # Distinct scores, listed in random order: the service must not trust the order.
        scores = rng.sample(range(30, 100), len(members))
        suggestions = [(m, s / 100) for m, s in zip(members, scores, strict=True)]
    best, confidence = max(suggestions, key=lambda pair: pair[1]) if suggestions else (None, None)
    if suggestions and rng.random() < 0.2:
        # A confident suggestion of someone outside the class: must be ignored.
        suggestions.append((uuid.uuid4(), 0.995))
    rng.shuffle(suggestions)
    return (
        essay(essay_id, suggestions),
        ExpectedEssay(essay_id, batch_id, roster.class_id, best, event_id, confidence),
    )


def build_stream(
    rosters: Sequence[Roster],
    *,
    events: int = 400,
    essays_per_event: int = 25,
    seed: int = 6,
    resend_every: int = 0,
    poison_every: int = 0,
) -> Stream:
    """``events`` platform-shaped BatchAuthorMatchesSuggestedV1 messages keyed by batch id.

    ``resend_every``: every n-th event is sent a second time later on (same event id, as an
    at-least-once producer does). ``poison_every``: after every n-th event one poison message
    (cycling through non-JSON, schema-invalid, unknown class, non-UUID batch id).
    """
    rng = random.Random(seed)
    messages: list[Message] = []
    expected: dict[uuid.UUID, ExpectedEssay] = {}
    resends: list[Message] = []
    poison_kinds = _poison_kinds()
    for index in range(events):
        roster = rosters[index % len(rosters)]
        event_id, batch_id = uuid.uuid4(), uuid.uuid4()
        essays = []
        for _ in range(essays_per_event):
            body, exp = _essay(rng, roster, event_id, batch_id)
            essays.append(body)
            expected[exp.essay_id] = exp
        value = encode(envelope(roster.class_id, essays, batch_id=batch_id, event_id=event_id))
        message = Message(str(batch_id).encode(), value, event_id, batch_id)
        messages.append(message)
        if resend_every and index % resend_every == 0:
            resends.append(Message(message.key, message.value, event_id, batch_id))
        if resends and index % 7 == 3:
            messages.append(resends.pop(0))
        if poison_every and index % poison_every == poison_every - 1:
            make = poison_kinds[(index // poison_every) % len(poison_kinds)]
            messages.append(make(rosters[0]))
    messages.extend(resends)
    return Stream(messages, expected)


def _poison_kinds() -> list[Callable[[Roster], Message]]:
    def non_json(_: Roster) -> Message:
        return Message(b"poison", b'{"event_id": "not json at all', poison_reason="invalid_json")

    def schema_invalid(roster: Roster) -> Message:
        body = envelope(roster.class_id, [essay(uuid.uuid4())])
        del body["data"]["class_id"]  # a required field missing
        return Message(
            body["data"]["batch_id"].encode(),
            encode(body),
            uuid.UUID(body["event_id"]),
            poison_reason="schema_invalid",
        )

    def unknown_class(_: Roster) -> Message:
        body = envelope(uuid.uuid4(), [essay(uuid.uuid4())])
        return Message(
            body["data"]["batch_id"].encode(),
            encode(body),
            uuid.UUID(body["event_id"]),
            poison_reason="unknown_class",
        )

    def non_uuid_batch(roster: Roster) -> Message:
        body = envelope(roster.class_id, [essay(uuid.uuid4())], batch_id="single-essay-batch")
        return Message(
            b"single-essay-batch",
            encode(body),
            uuid.UUID(body["event_id"]),
            poison_reason="malformed_id",
        )

    return [non_json, schema_invalid, unknown_class, non_uuid_batch]


async def seeded_stream(
    database_url: str,
    *,
    events: int = 400,
    essays_per_event: int = 25,
    resend_every: int = 0,
    poison_every: int = 0,
) -> Stream:
    """The default rosters seeded into ``database_url`` and a stream of ``events`` about them."""
    rosters = await seed_rosters(database_url)
    return build_stream(
        rosters,
        events=events,
        essays_per_event=essays_per_event,
        resend_every=resend_every,
        poison_every=poison_every,
    )


# ---- producing ----------------------------------------------------------------------------


class StreamProducer:
    """One aiokafka producer; sends are pipelined (linger, gathered futures)."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=20, acks="all", request_timeout_ms=30_000
        )
        self.sent = 0

    async def __aenter__(self) -> StreamProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def send(self, topic: str, messages: Sequence[Message]) -> None:
        futures = [await self._producer.send(topic, value=m.value, key=m.key) for m in messages]
        for message, meta in zip(messages, await asyncio.gather(*futures), strict=True):
            message.partition, message.offset = meta.partition, meta.offset
        self.sent += len(messages)

    async def stream(
        self,
        topic: str,
        messages: Sequence[Message],
        *,
        chunk: int = 20,
        pause: float = 0.1,
        gate: asyncio.Event | None = None,
        after_chunk: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        """Send in chunks with a pause in between: a stream that lasts, not one burst.

        ``gate``: cleared by a test, it holds the stream back (between chunks) until set again.
        ``after_chunk(sent)``: awaited once a chunk is acknowledged (a fault can be timed to hit
        the service while it handles that chunk).
        """
        for start in range(0, len(messages), chunk):
            if gate is not None:
                await gate.wait()
            await self.send(topic, messages[start : start + chunk])
            if after_chunk is not None:
                await after_chunk(self.sent)
            # Pacing is the scenario: a steady stream that a fault lands in the middle of.
            await asyncio.sleep(pause)


class FaultMidStream:
    """An ``after_chunk`` hook for :meth:`StreamProducer.stream` that runs ``fault`` once.

    It fires after the chunk that takes the stream to a quarter of ``stream``'s messages, ~20 ms
    after the chunk is acknowledged: the service is handling that chunk then. ``hit`` is set once
    ``fault`` returned; ``sent`` is how many messages were sent by then.
    """

    def __init__(self, stream: Stream, fault: Callable[[], Awaitable[None]]) -> None:
        self._at = len(stream.messages) // 4
        self._fault = fault
        self.hit = asyncio.Event()
        self.sent = 0

    async def __call__(self, sent: int) -> None:
        if sent >= self._at and not self.hit.is_set():
            await asyncio.sleep(0.02)  # the scenario: the fault hits while a chunk is handled
            await self._fault()
            self.sent = sent
            self.hit.set()

    async def wait(self, within: float = 60.0) -> None:
        await asyncio.wait_for(self.hit.wait(), within)


# ---- checking the database ----------------------------------------------------------------


@dataclass
class Verdict:
    rows_expected: int
    rows_found: int
    distinct_essays: int
    missing: list[uuid.UUID] = field(default_factory=list)
    extra: list[uuid.UUID] = field(default_factory=list)
    wrong_student: list[uuid.UUID] = field(default_factory=list)
    wrong_batch_or_source: list[uuid.UUID] = field(default_factory=list)
    processed_events: int = 0
    events_expected: int = 0
    unexpected_events: int = 0

    @property
    def duplicates(self) -> int:
        return self.rows_found - self.distinct_essays

    @property
    def exact(self) -> bool:
        return (
            self.rows_found == self.rows_expected
            and not self.duplicates
            and not self.missing
            and not self.extra
            and not self.wrong_student
            and not self.wrong_batch_or_source
            and self.processed_events == self.events_expected
            and not self.unexpected_events
        )

    def describe(self) -> str:
        return (
            f"rows expected {self.rows_expected}, found {self.rows_found} "
            f"({self.distinct_essays} distinct essays, {self.duplicates} duplicates); "
            f"missing {len(self.missing)}, extra {len(self.extra)}, "
            f"wrong student {len(self.wrong_student)}, "
            f"wrong batch/class/source {len(self.wrong_batch_or_source)}; "
            f"processed_events {self.processed_events} of {self.events_expected} "
            f"(+{self.unexpected_events} unexpected)"
        )


async def verify(
    database_url: str, stream: Stream, *, timed_out_at: float | None = None
) -> Verdict:
    """Every essay exactly once, with the right student, batch, class and source event.

    ``timed_out_at``: every batch was finalized by the validation timeout with this confidence
    threshold; the status and student must be what the timeout decides.
    """
    async with connection(database_url) as conn:
        rows = await conn.fetch(
            "SELECT essay_id, batch_id, class_id, student_id, source_event_id, status "
            "FROM essay_student_associations"
        )
        processed = {
            r["event_id"] for r in await conn.fetch("SELECT event_id FROM processed_events")
        }
    expected = stream.expected
    verdict = Verdict(
        rows_expected=len(expected),
        rows_found=len(rows),
        distinct_essays=len({r["essay_id"] for r in rows}),
        events_expected=len(stream.event_ids),
    )
    seen: set[uuid.UUID] = set()
    for row in rows:
        essay_id = row["essay_id"]
        seen.add(essay_id)
        exp = expected.get(essay_id)
        if exp is None:
            verdict.extra.append(essay_id)
            continue
        if timed_out_at is None:
            expected_state: tuple[str | None, uuid.UUID | None] = (None, exp.student_id)
            state = (None, row["student_id"])
        else:
            expected_state = exp.after_timeout(timed_out_at)
            state = (row["status"], row["student_id"])
        if state != expected_state:
            verdict.wrong_student.append(essay_id)
        if (row["batch_id"], row["class_id"], row["source_event_id"]) != (
            exp.batch_id,
            exp.class_id,
            exp.event_id,
        ):
            verdict.wrong_batch_or_source.append(essay_id)
    verdict.missing = [essay_id for essay_id in expected if essay_id not in seen]
    verdict.processed_events = len(processed & stream.event_ids)
    verdict.unexpected_events = len(processed - stream.event_ids)
    return verdict


def log_tails(services: Iterable[ServiceProcess], lines: int = 30) -> str:
    return "\n".join(
        f"--- log of {s.base_url} (pid {s.pid}) ---\n{s.log_tail(lines)}" for s in services
    )


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    *,
    within: float,
    what: str | Callable[[], str],
    services: Iterable[ServiceProcess] = (),
    every: float = 0.2,
) -> float:
    """``tests.waiting.wait_for`` whose failure also shows the services' log tails."""

    def described() -> str:
        return f"{what() if callable(what) else what}\n{log_tails(services)}"

    return await wait_for(condition, within=within, every=every, what=described)


async def wait_for_rows(
    database_url: str,
    at_least: int,
    *,
    within: float,
    services: Iterable[ServiceProcess] = (),
) -> float:
    last: list[int | None] = [None]

    async def enough() -> bool:
        last[0] = await association_count(database_url)
        return last[0] is not None and last[0] >= at_least

    try:
        return await wait_until(
            enough, within=within, what=f"{at_least} association rows", services=services
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n(last count: {last[0]})") from None


# ---- Kafka --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def admin_client(bootstrap: str) -> Any:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    async with admin_client(bootstrap) as admin:
        await admin.create_topics([NewTopic(name, n, 1) for name, n in partitions.items()])


async def committed_offsets(bootstrap: str, group_id: str, topic: str) -> dict[int, int]:
    """The consumer group's committed offsets (next offset to read) per partition, as the
    broker has them (what a new owner of the partition would start from)."""
    async with admin_client(bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(group_id)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def topic_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    async with admin_client(bootstrap) as admin:
        described = await admin.describe_topics([topic])
    return sorted(
        TopicPartition(topic, p["partition"])
        for t in described
        if t["topic"] == topic and not t["error_code"]
        for p in t["partitions"]
    )


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    partitions = await topic_partitions(bootstrap, topic)
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def reset_group_offsets(bootstrap: str, group_id: str, topic: str, offset: int = 0) -> None:
    """Commit ``offset`` for every partition of ``topic`` in ``group_id`` (the group must have no
    active members, like ``kafka-consumer-groups --reset-offsets --to-earliest``)."""
    partitions = await topic_partitions(bootstrap, topic)
    assert partitions, f"topic {topic} has no partitions"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.commit({tp: offset for tp in partitions})
    finally:
        await consumer.stop()


async def wait_committed_to_end(
    bootstrap: str,
    group_id: str,
    topic: str,
    *,
    within: float = 30.0,
    what: str = "offsets committed to the end",
    services: Iterable[ServiceProcess] = (),
) -> float:
    """Wait until ``group_id`` committed the end of every partition of ``topic``; returns when."""
    ends = await end_offsets(bootstrap, topic)
    committed: dict[int, int] = {}

    async def caught_up() -> bool:
        committed.clear()
        committed.update(await committed_offsets(bootstrap, group_id, topic))
        return committed == ends

    return await wait_until(
        caught_up,
        within=within,
        what=lambda: f"{what} {ends} (committed: {committed})",
        services=services,
    )


async def read_topic(bootstrap: str, topic: str, *, within: float = 30.0) -> list[Any]:
    """Every record of ``topic`` from the beginning up to its end offsets as of now."""
    records: list[Any] = []
    partitions = await topic_partitions(bootstrap, topic)
    if not partitions:
        return records
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + within
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            assert time.monotonic() < deadline, f"could not read {topic} to its end in {within}s"
            batches = await consumer.getmany(timeout_ms=500)
            for tp, batch in batches.items():
                records.extend(r for r in batch if r.offset < ends[tp])
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None


@dataclass(frozen=True)
class ConfirmedMessage:
    batch_id: uuid.UUID
    event_id: uuid.UUID
    timeout_triggered: bool


async def confirmed_messages(bootstrap: str, batch_ids: set[uuid.UUID]) -> list[ConfirmedMessage]:
    """Every StudentAssociationsConfirmedV1 on the platform topic for one of ``batch_ids``
    (other tests publish on the same topic: theirs are filtered out)."""
    found = []
    for record in await read_topic(bootstrap, CONFIRMED_TOPIC):
        body = json.loads(record.value)
        batch_id = uuid.UUID(body["data"]["batch_id"])
        if batch_id in batch_ids:
            assert record.key == str(batch_id).encode(), "key must be the batch id"
            assert header(record, "event_id") == body["event_id"]
            found.append(
                ConfirmedMessage(
                    batch_id, uuid.UUID(body["event_id"]), body["data"]["timeout_triggered"]
                )
            )
    return found


def per_batch(messages: Iterable[ConfirmedMessage]) -> Counter[uuid.UUID]:
    return Counter(m.batch_id for m in messages)


# ---- HTTP ---------------------------------------------------------------------------------


def confirm_body(essays: Iterable[ExpectedEssay]) -> dict[str, Any]:
    """A teacher's decision on every essay: confirm the suggested student, reject the rest."""
    return {
        "associations": [
            {
                "essay_id": str(e.essay_id),
                "student_id": str(e.student_id) if e.student_id else None,
                "confirmed": e.student_id is not None,
            }
            for e in essays
        ]
    }


async def confirm_batch(
    client: httpx.AsyncClient, stream: Stream, batch_id: uuid.UUID, teacher: str = TEACHER
) -> dict[str, Any]:
    """POST the confirm-all decision for one batch; returns the response body (must be 200)."""
    response = await client.post(
        f"/v1/batches/{batch_id}/student-associations/confirm",
        json=confirm_body(stream.essays_of(batch_id)),
        headers={"X-User-ID": teacher},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["finalized"], body
    return body


async def metrics_text(service: ServiceProcess) -> str:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=5.0) as client:
        response = await client.get("/metrics")
    response.raise_for_status()
    return response.text


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The parent pid is the 2nd field after the parenthesised command name.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def freeze(server: Any) -> None:
    """SIGSTOP a local server and every process it started: connections stay open, nothing
    answers, not even a refusal. Each process by itself: PostgreSQL's backends start sessions
    of their own, which a signal to the server's process group would not reach."""
    os.kill(server.pid, signal.SIGSTOP)  # first, so that it starts nothing more
    for child in _children(server.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGSTOP)


def thaw(server: Any) -> None:
    """SIGCONT what :func:`freeze` stopped (harmless on a server that is running)."""
    for child in _children(server.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGCONT)
    os.kill(server.pid, signal.SIGCONT)


@dataclass
class HealthWatch:
    """Polls /healthz in the background and remembers (monotonic time, status) of each answer
    (status None: no answer at all)."""

    service: ServiceProcess
    every: float = 0.25
    samples: list[tuple[float, int | None]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HealthWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _poll(self) -> None:
        async with httpx.AsyncClient(base_url=self.service.base_url, timeout=4.0) as client:
            while True:
                try:
                    status: int | None = (await client.get("/healthz")).status_code
                except httpx.HTTPError:
                    status = None
                self.samples.append((time.monotonic(), status))
                await asyncio.sleep(self.every)  # a sampling interval, not a synchronisation

    def first(self, status: int, after: float) -> float | None:
        """When ``status`` was first seen after the monotonic time ``after``."""
        return next((t for t, s in self.samples if t >= after and s == status), None)

    async def answering(self, status: int) -> bool:
        """Whether the latest answer is ``status`` (a condition for :func:`wait_until`)."""
        return bool(self.samples) and self.samples[-1][1] == status

    async def answered_since(self, status: int, after: float) -> bool:
        """Whether ``status`` was seen after the monotonic time ``after`` (a condition too)."""
        return self.first(status, after) is not None

    def showed_outage(self, start: float, end: float) -> float:
        """Asserts 503 between the monotonic times ``start`` and ``end``, then 200 after ``end``,
        and 200 last; returns when 200 came back."""
        during = [s for t, s in self.samples if start <= t <= end]
        assert 503 in during, f"/healthz never reported the outage: {self.summary()}"
        healthy_at = self.first(200, after=end)
        assert healthy_at is not None, self.summary()
        assert self.samples[-1][1] == 200, self.summary()
        return healthy_at

    def summary(self) -> str:
        runs: list[tuple[int | None, int]] = []
        for _, status in self.samples:
            if runs and runs[-1][0] == status:
                runs[-1] = (status, runs[-1][1] + 1)
            else:
                runs.append((status, 1))
        return " -> ".join(f"{s}x{n}" for s, n in runs)
