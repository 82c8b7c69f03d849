"""The outbox relay: publishes committed ``outbox_events`` rows to Kafka, at least once.

Claim (lease): one short transaction picks due pending rows with ``FOR UPDATE SKIP LOCKED`` and
pushes their ``next_attempt_at`` a lease ahead, then commits. For the lease's duration no other
relay (replica) sees those rows, and no transaction stays open while Kafka is slow.

Order: only an aggregate's *head* is claimed, its pending row with the lowest
``aggregate_sequence`` (commit order, see migration 0005). While that row is pending (leased by
a relay, or waiting for a retry) no relay takes the aggregate's later rows, so an aggregate's
events reach Kafka in commit order however many relays run: a row is sent only after the broker
acknowledged the one before it. (A re-send after a lease ran out can repeat an event after a
later one; each event's first delivery is in order, and consumers dedupe on event_id.) A
``failed`` row no longer holds its aggregate back.

Publish: each stored envelope goes out unchanged (same event_id, same timestamp, stored headers,
key = ``message_key``) on the shared idempotent producer (acks=all); the sent rows are marked
published in a second short transaction.

Crash between publish and mark: the lease expires, a relay claims the row again and re-sends it
with the same event_id: at-least-once delivery, consumers dedupe on event_id.

Failure: ``attempts`` + 1, ``last_error``, ``next_attempt_at`` = now + exponential backoff; after
``outbox_max_attempts`` the row becomes ``failed`` (terminal, outside the polling index, counted in
the ``outbox_failed_events`` gauge). A transient error (broker outage, leader election: every
send of a claim or only some) is not the messages' fault: the rows are rescheduled without using
up attempts, and the outage shows as a growing queue depth / oldest-pending age instead.

Wake-up: LISTEN on channel ``outbox_events`` (the migration's AFTER INSERT trigger notifies on
commit) over a dedicated asyncpg connection; polling every ``outbox_poll_interval_seconds`` is the
safety net (missed notifications, retries that become due, a lost LISTEN connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, OutOfOrderSequenceNumber
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Interval, Table, bindparam, case, exists, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from class_management_service.db import server_settings
from class_management_service.outbox.models import OutboxEvent, OutboxStatus
from class_management_service.settings import Settings
from class_management_service.workers.supervisor import DATABASE_UNAVAILABLE, Backoff

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "outbox_events"
_MAX_ERROR_CHARS = 2000
_BACKOFF_BASE_SECONDS = 2.0
_BACKOFF_MAX_SECONDS = 600.0


class ProducerSource(Protocol):
    """Where the relay gets its Kafka producer (``SharedProducer`` in the service)."""

    async def get(self) -> Any: ...


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "outbox_pending_events",
            "Outbox events not yet published (queue depth).",
            registry=registry,
        )
        self.failed = Gauge(
            "outbox_failed_events",
            "Outbox events that exhausted their attempts (status failed; need an operator).",
            registry=registry,
        )
        self.oldest_pending_age = Gauge(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest unpublished outbox event (0 when none).",
            registry=registry,
        )
        self.published = Counter(
            "outbox_published_total",
            "Outbox events published to Kafka by this instance.",
            ["topic"],
            registry=registry,
        )
        self.publish_failures = Counter(
            "outbox_publish_failures_total",
            "Failed publish attempts by this instance (including broker outages).",
            ["topic"],
            registry=registry,
        )
        self.given_up = Counter(
            "outbox_events_failed_total",
            "Outbox events this instance moved to the terminal failed status.",
            ["topic"],
            registry=registry,
        )


_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, RelayMetrics] = (
    weakref.WeakKeyDictionary()
)


def relay_metrics(registry: CollectorRegistry) -> RelayMetrics:
    """One set of relay metrics per registry, however many relays share it."""
    metrics = _metrics_by_registry.get(registry)
    if metrics is None:
        metrics = _metrics_by_registry[registry] = RelayMetrics(registry)
    return metrics


def backoff_seconds(attempts: int) -> float:
    """Delay before retry number ``attempts`` (1-based): 2 s, 4 s, 8 s, ... capped at 10 min."""
    exponent = min(max(attempts - 1, 0), 30)
    return float(min(_BACKOFF_BASE_SECONDS * (2**exponent), _BACKOFF_MAX_SECONDS))


def _is_transient(exc: BaseException) -> bool:
    # OutOfOrderSequenceNumber: the producer's state is broken, not the message; the shared
    # producer replaces itself on the next use (messaging/producer.py).
    return bool(getattr(exc, "retriable", False)) or isinstance(
        exc, KafkaConnectionError | KafkaTimeoutError | TimeoutError | OutOfOrderSequenceNumber
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]


@dataclass(frozen=True)
class ClaimedEvent:
    id: uuid.UUID
    topic: str
    message_key: str
    envelope: dict[str, Any]
    headers: dict[str, str]
    attempts: int
    lease_until: datetime
    created_at: datetime


@dataclass
class RelayResult:
    claimed: int = 0
    published: int = 0
    failed: int = 0
    outage: bool = False
    errors: dict[uuid.UUID, str] = field(default_factory=dict)


class OutboxRelay:
    """A supervisor worker; safe to run on any number of replicas at once."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        producer: ProducerSource,
        settings: Settings,
        registry: CollectorRegistry,
        name: str = "outbox-relay",
        topic_overrides: Mapping[str, str] | None = None,
        lease_seconds: float | None = None,
        gauge_refresh_seconds: float = 5.0,
        listen: bool = True,
    ) -> None:
        self._session_factory = session_factory
        self._producer = producer
        self._settings = settings
        self._metrics = relay_metrics(registry)
        self._name = name
        # Tests route a topic to a private one; the stored row is never changed.
        self._topic_overrides = dict(topic_overrides or {})
        request_timeout = settings.producer_request_timeout_ms / 1000
        # The lease must outlast a publish (bounded by publish_timeout) by a wide margin.
        self._lease_seconds = lease_seconds or max(30.0, 3 * request_timeout)
        self._publish_timeout = max(self._lease_seconds / 2, 0.1)
        self._gauge_refresh_seconds = gauge_refresh_seconds
        self._listen = listen
        self._wake = asyncio.Event()
        self._gauges_refreshed_at = float("-inf")
        self._consecutive_outages = 0
        self.backoff = Backoff()  # database failures; broker outages: _consecutive_outages

    @property
    def name(self) -> str:
        return self._name

    # ---- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        listener: asyncpg.Connection | None = None
        next_listen_attempt = 0.0
        try:
            while True:
                if (
                    self._listen
                    and (listener is None or listener.is_closed())
                    and time.monotonic() >= next_listen_attempt
                ):
                    listener = await self._connect_listener()
                    next_listen_attempt = time.monotonic() + 5.0
                # Cleared before claiming: a NOTIFY arriving during the claim keeps it set.
                self._wake.clear()
                try:
                    result = await self.run_once()
                    await self._refresh_gauges_if_due()
                except DATABASE_UNAVAILABLE as exc:
                    # Claimed rows stay leased and are sent again once the lease runs out.
                    await self.backoff.wait_after(exc, worker=self._name)
                    continue
                self.backoff.reset()
                if result.outage:
                    self._consecutive_outages += 1
                    await asyncio.sleep(backoff_seconds(self._consecutive_outages))
                    continue
                self._consecutive_outages = 0
                if result.claimed >= self._settings.outbox_batch_size or result.published:
                    # More is probably due right now: a full batch, or the successors of the
                    # aggregates just published (a pass takes only each aggregate's first row).
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), self._settings.outbox_poll_interval_seconds
                    )
        finally:
            if listener is not None and not listener.is_closed():
                # terminate() is synchronous: safe while the task is being cancelled.
                listener.terminate()

    async def _connect_listener(self) -> asyncpg.Connection | None:
        dsn = (
            make_url(self._settings.database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        connection: asyncpg.Connection | None = None
        try:
            connection = await asyncpg.connect(
                dsn,
                timeout=self._settings.database_connect_timeout_seconds,
                server_settings=server_settings(self._settings),
            )
            await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            if connection is not None:
                connection.terminate()
            logger.warning(
                "outbox LISTEN unavailable; polling only",
                extra={"worker": self._name, "error": _describe(exc)},
            )
            return None
        return connection

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Ask the loop to look for work now (also what a NOTIFY does)."""
        self._wake.set()

    # ---- one pass ---------------------------------------------------------------------------

    async def run_once(self) -> RelayResult:
        """Claim due events, publish them, record the outcome. Returns what happened."""
        claimed = await self._claim()
        result = RelayResult(claimed=len(claimed))
        if not claimed:
            return result
        outcomes = await self._publish(claimed)
        sent = [event for event in claimed if outcomes[event.id] is None]
        failures = {event.id: exc for event in claimed if (exc := outcomes[event.id]) is not None}
        if sent:
            await self._mark_published(sent)
            for event in sent:
                self._metrics.published.labels(event.topic).inc()
        if failures:
            result.outage = not sent and all(_is_transient(exc) for exc in failures.values())
            await self._record_failures(
                [event for event in claimed if event.id in failures],
                failures,
                count_attempt=not result.outage,
            )
            result.errors = {event_id: _describe(exc) for event_id, exc in failures.items()}
        result.published, result.failed = len(sent), len(failures)
        return result

    async def _claim(self) -> list[ClaimedEvent]:
        o = OutboxEvent
        earlier = aliased(OutboxEvent, name="earlier")
        due = (
            select(o.id)
            .where(
                o.status == OutboxStatus.PENDING.value,
                o.next_attempt_at <= func.now(),
                ~exists().where(
                    earlier.status == OutboxStatus.PENDING.value,
                    earlier.aggregate_type == o.aggregate_type,
                    earlier.aggregate_id == o.aggregate_id,
                    earlier.aggregate_sequence < o.aggregate_sequence,
                ),
            )
            .order_by(o.next_attempt_at, o.created_at)
            .limit(self._settings.outbox_batch_size)
            .with_for_update(of=o, skip_locked=True)
            .cte("due")
        )
        claim = (
            update(o)
            .where(o.id.in_(select(due.c.id)))
            .values(next_attempt_at=func.now() + timedelta(seconds=self._lease_seconds))
            .returning(
                o.id,
                o.topic,
                o.message_key,
                o.envelope,
                o.headers,
                o.attempts,
                o.next_attempt_at,
                o.created_at,
            )
            .execution_options(synchronize_session=False)
        )
        async with self._session_factory() as session, session.begin():
            rows = (await session.execute(claim)).all()
        events = [
            ClaimedEvent(
                id=row.id,
                topic=row.topic,
                message_key=row.message_key,
                envelope=row.envelope,
                headers=row.headers,
                attempts=row.attempts,
                lease_until=row.next_attempt_at,
                created_at=row.created_at,
            )
            for row in rows
        ]
        events.sort(key=lambda event: event.created_at)
        return events

    async def _publish(
        self, events: Sequence[ClaimedEvent]
    ) -> dict[uuid.UUID, BaseException | None]:
        outcomes: dict[uuid.UUID, BaseException | None] = {}
        in_flight: dict[asyncio.Future[Any], ClaimedEvent] = {}
        deadline = time.monotonic() + self._publish_timeout
        try:
            async with asyncio.timeout(self._publish_timeout):
                producer = await self._producer.get()
                for event in events:
                    try:
                        future = await producer.send(
                            self._topic_overrides.get(event.topic, event.topic),
                            value=json.dumps(
                                event.envelope, separators=(",", ":"), ensure_ascii=False
                            ).encode(),
                            key=event.message_key.encode(),
                            headers=[
                                (name, str(value).encode()) for name, value in event.headers.items()
                            ],
                        )
                    except Exception as exc:  # a rejected message: its own failure
                        outcomes[event.id] = exc
                    else:
                        in_flight[future] = event
        except Exception as exc:  # timed out, or no producer at all (broker down at start)
            queued = {event.id for event in in_flight.values()}
            for event in events:
                if event.id not in outcomes and event.id not in queued:
                    outcomes[event.id] = exc
        if in_flight:
            done, pending = await asyncio.wait(
                in_flight, timeout=max(deadline - time.monotonic(), 0.01)
            )
            for future in done:
                outcomes[in_flight[future].id] = future.exception()
            for future in pending:
                # It may still be delivered; a re-send carries the same event_id.
                outcomes[in_flight[future].id] = TimeoutError("no broker acknowledgement in time")
        return outcomes

    async def _mark_published(self, events: Sequence[ClaimedEvent]) -> None:
        o = OutboxEvent
        async with self._session_factory() as session, session.begin():
            await session.execute(
                update(o)
                .where(
                    o.id.in_([event.id for event in events]),
                    o.status == OutboxStatus.PENDING.value,
                )
                .values(
                    status=OutboxStatus.PUBLISHED.value, published_at=func.now(), last_error=None
                )
                .execution_options(synchronize_session=False)
            )

    async def _record_failures(
        self,
        events: Sequence[ClaimedEvent],
        errors: Mapping[uuid.UUID, BaseException],
        *,
        count_attempt: bool,
    ) -> None:
        table = OutboxEvent.__table__
        assert isinstance(table, Table)
        c = table.c
        max_attempts = self._settings.outbox_max_attempts
        # Fenced on the lease: if the lease ran out and another relay re-claimed the row, that
        # relay owns the outcome now and this stale report is dropped.
        statement = (
            update(table)
            .where(
                c.id == bindparam("event_id"),
                c.status == OutboxStatus.PENDING.value,
                c.next_attempt_at == bindparam("lease_until"),
            )
            .values(
                attempts=c.attempts + bindparam("increment"),
                last_error=bindparam("error"),
                next_attempt_at=func.now() + bindparam("delay", type_=Interval()),
                status=case(
                    (
                        c.attempts + bindparam("increment") >= max_attempts,
                        OutboxStatus.FAILED.value,
                    ),
                    else_=OutboxStatus.PENDING.value,
                ),
            )
        )
        params = []
        for event in events:
            # Reliability fix (found by tests/reliability/test_outbox_outage.py): a transient
            # error (leader election, broker restart) is never the message's fault, also when
            # other sends of the same claim went through; it used to use up an attempt, so a
            # partition offline for long turned its events into terminal 'failed' rows.
            counted = count_attempt and not _is_transient(errors[event.id])
            increment = 1 if counted else 0
            attempts = event.attempts + increment
            delay = (
                backoff_seconds(attempts)
                if counted
                else min(backoff_seconds(self._consecutive_outages + 1), 60.0)
            )
            params.append(
                {
                    "event_id": event.id,
                    "lease_until": event.lease_until,
                    "error": _describe(errors[event.id]),
                    "delay": timedelta(seconds=delay),
                    "increment": increment,
                }
            )
            topic = event.topic
            self._metrics.publish_failures.labels(topic).inc()
            if counted and attempts >= max_attempts:
                self._metrics.given_up.labels(topic).inc()
                logger.error(
                    "outbox event failed permanently",
                    extra={
                        "event_id": str(event.id),
                        "topic": topic,
                        "attempts": attempts,
                        "error": _describe(errors[event.id]),
                    },
                )
            else:
                logger.warning(
                    "outbox publish failed; will retry",
                    extra={
                        "event_id": str(event.id),
                        "topic": topic,
                        "attempts": attempts,
                        "retry_in_s": delay,
                        "error": _describe(errors[event.id]),
                    },
                )
        async with self._session_factory() as session, session.begin():
            connection = await session.connection()
            await connection.execute(statement, params)

    # ---- gauges -----------------------------------------------------------------------------

    async def _refresh_gauges_if_due(self) -> None:
        if time.monotonic() - self._gauges_refreshed_at >= self._gauge_refresh_seconds:
            await self.refresh_gauges()

    async def refresh_gauges(self) -> None:
        """Queue depth, failed count and oldest-pending age, from the table (all replicas)."""
        o = OutboxEvent
        async with self._session_factory() as session:
            pending = (
                await session.execute(
                    select(
                        func.count(),
                        func.extract("epoch", func.now() - func.min(o.created_at)),
                    ).where(o.status == OutboxStatus.PENDING.value)
                )
            ).one()
            failed = (
                await session.execute(
                    select(func.count()).where(o.status == OutboxStatus.FAILED.value)
                )
            ).scalar_one()
        self._metrics.pending.set(pending[0])
        self._metrics.oldest_pending_age.set(max(float(pending[1] or 0.0), 0.0))
        self._metrics.failed.set(failed)
        self._gauges_refreshed_at = time.monotonic()
