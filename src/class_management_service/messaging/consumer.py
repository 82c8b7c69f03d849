"""A generic Kafka batch consumer worker with at-least-once delivery and effectively-once effects.

The loop, per poll (``getmany``) and per partition:

1. ``handler.decode`` every record; a record that cannot be decoded is *poison*;
2. ``handler.prepare`` the decoded records as one batch (read-only: lookups and decisions);
3. ``handler.apply`` the prepared batch. It either returns (every non-poison record's effects
   are durably committed, or were already, and it names the records it found to be poison) or
   raises (a *transient* failure: nothing is assumed);
4. publish the poison records unchanged to the dead-letter topic, with headers saying why (or,
   when a record's copy is too large for that topic, store it in the ``dead_letters`` table);
5. only then commit ``last offset + 1`` for the partition.

A transient failure (database, Redis or broker down, deadlock, a bug) never moves the committed
offset: the consumer seeks the partition back to the first uncommitted record, waits with
exponential backoff and polls again, so it keeps polling (no ``max_poll_interval`` eviction) and
an event is only ever passed once its effects are committed. Handlers must therefore be
idempotent, which is also what makes redelivery after a crash or a rebalance harmless.

Throughput: steps 1-2 of the next poll (CPU-bound decoding and planning, read-only queries) run
while steps 3-5 of the current poll wait on the database; batches are still applied and committed
strictly one after the other, in offset order.

Rebalances: handling a partition batch and committing its offset happen under one lock; the
rebalance listener takes the same lock before a partition is revoked, so a revoke waits for the
batch in flight and then commits anything processed but not yet committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from class_management_service.messaging.dead_letter import DeadLetter, DeadLetterPublisher
from class_management_service.observability.health import CheckResult, HealthCheck
from class_management_service.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
P = TypeVar("P")

# aiokafka ships no type information; records are ``aiokafka.ConsumerRecord[bytes, bytes]``.
Record = Any


class PoisonMessage(Exception):
    """A message that can never be processed as it is; it goes to the dead-letter topic.

    ``reason`` is a short machine-readable code (``invalid_json``, ``malformed_id``,
    ``unknown_class``...), ``error`` the human explanation.
    """

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error


@dataclass(frozen=True, slots=True)
class Inbound(Generic[T_co]):
    """A decoded message together with the record it came from."""

    record: Record
    message: T_co


@dataclass
class BatchOutcome:
    """What a handler did with a batch (when it returns, all non-poison effects are durable)."""

    #: Positions (in the batch handed to the handler) of poison messages, with why.
    poisoned: dict[int, PoisonMessage] = field(default_factory=dict)
    #: Messages whose effects this call committed.
    applied: int = 0
    #: Messages whose effects had been committed before (redelivery, concurrent duplicate).
    duplicates: int = 0


class BatchHandler(Protocol[T, P]):
    """Three stages per partition batch; only the last one has effects.

    ``decode`` and ``prepare`` of the next batch run while ``apply`` of the current one waits
    on I/O, so they must not change anything (reading is fine).
    """

    def decode(self, record: Record) -> T:
        """Decode one record; raise :class:`PoisonMessage` if it can never be processed."""
        ...

    async def prepare(self, batch: Sequence[Inbound[T]]) -> P:
        """Read-only preparation of a batch (lookups, decisions); raise if it fails."""
        ...

    async def apply(self, prepared: P) -> BatchOutcome:
        """Apply a batch idempotently; raise on a transient failure (nothing is committed)."""
        ...


class ConsumerMetrics:
    """Prometheus metrics of one consumer worker, registered on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "kafka_consumer_messages_consumed_total",
            "Records fetched from Kafka (redeliveries after a retry count again).",
            ["topic"],
            registry=registry,
        )
        self.processed = Counter(
            "kafka_consumer_messages_processed_total",
            "Records whose effects are committed: applied now, or found already applied.",
            ["topic", "outcome"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "kafka_consumer_messages_dead_lettered_total",
            "Poison records published to the dead-letter topic, by reason.",
            ["topic", "reason"],
            registry=registry,
        )
        self.batch_failures = Counter(
            "kafka_consumer_batch_failures_total",
            "Partition batches that failed transiently and will be retried.",
            ["topic"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "kafka_consumer_batch_duration_seconds",
            "Time to handle one partition batch, from decoding to the offset commit.",
            ["topic"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_size = Histogram(
            "kafka_consumer_batch_records",
            "Records per partition batch.",
            ["topic"],
            registry=registry,
            buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500, 1000),
        )
        self.committed_offset = Gauge(
            "kafka_consumer_committed_offset",
            "Last offset committed by this consumer (next offset to read), per partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.lag = Gauge(
            "kafka_consumer_lag",
            "Records behind the partition's high watermark, per assigned partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "kafka_consumer_assigned_partitions",
            "Partitions currently assigned to this consumer.",
            ["topic"],
            registry=registry,
        )
        self.last_poll = Gauge(
            "kafka_consumer_last_poll_timestamp_seconds",
            "Unix time of the last completed poll.",
            ["topic"],
            registry=registry,
        )


@dataclass
class _Prepared(Generic[T, P]):
    """One partition's records of one poll, decoded (and prepared) and waiting to be applied."""

    tp: TopicPartition
    records: Sequence[Record]
    batch: list[Inbound[T]] = field(default_factory=list)
    poison: list[DeadLetter] = field(default_factory=list)
    plan: P | None = None
    #: The records of ``batch`` by position, kept once the decoded messages are let go.
    batch_records: list[Record] = field(default_factory=list)


@dataclass
class ConsumerProgress:
    """What the health check looks at (monotonic clock)."""

    created_at: float
    running: bool = False
    last_poll_at: float | None = None
    last_batch_at: float | None = None
    failing_since: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    assigned: set[TopicPartition] = field(default_factory=set)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    lag: dict[TopicPartition, int] = field(default_factory=dict)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaBatchConsumer[Any, Any]) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.on_assigned(set(assigned))


class KafkaBatchConsumer(Generic[T, P]):
    """A supervisor :class:`Worker`: consumes ``topic`` in ``group_id`` until cancelled."""

    def __init__(
        self,
        *,
        name: str,
        settings: Settings,
        topic: str,
        group_id: str,
        handler: BatchHandler[T, P],
        dead_letters: DeadLetterPublisher,
        metrics: ConsumerMetrics,
        initial_backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 10.0,
    ) -> None:
        self._name = name
        self._settings = settings
        self.topic = topic
        self.group_id = group_id
        self._handler = handler
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._initial_backoff = initial_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._backoff = 0.0
        # Set when a batch succeeds: ends a backoff sleep early (see _poll_forever).
        self._recovered = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        # Held while a partition batch is handled and committed, and while a revoke commits.
        self._lock = asyncio.Lock()
        # Next offset to commit per partition, for work done but not yet committed.
        self._pending: dict[TopicPartition, int] = {}
        self.progress = ConsumerProgress(created_at=time.monotonic())

    @property
    def name(self) -> str:
        return self._name

    # -- lifecycle -------------------------------------------------------------------------

    def _new_consumer(self) -> AIOKafkaConsumer:
        s = self._settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{s.service_name}-{self._name}",
            enable_auto_commit=False,
            auto_offset_reset=s.consumer_auto_offset_reset,
            max_poll_records=s.consumer_max_poll_records,
            session_timeout_ms=s.consumer_session_timeout_ms,
            heartbeat_interval_ms=s.consumer_heartbeat_interval_ms,
            max_poll_interval_ms=s.consumer_max_poll_interval_ms,
            # Only ever see committed records of transactional producers.
            isolation_level="read_committed",
        )

    async def run(self) -> None:
        consumer = self._new_consumer()
        consumer.subscribe([self.topic], listener=_Listener(self))
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self.progress.running = True
        logger.info("consumer started", extra={"topic": self.topic, "group_id": self.group_id})
        try:
            await self._poll_forever(consumer)
        finally:
            self.progress.running = False
            try:
                # A graceful stop commits work already done, so the next owner starts after it.
                async with self._lock:
                    await self._commit_pending(consumer, set(self._pending))
            except Exception:
                logger.warning("final offset commit failed", exc_info=True)
            finally:
                self._consumer = None
                await consumer.stop()
                self._clear_assignment()
                logger.info(
                    "consumer left group", extra={"topic": self.topic, "group_id": self.group_id}
                )

    async def _poll_forever(self, consumer: AIOKafkaConsumer) -> None:
        """Poll, decode, prepare, apply; the first three overlap applying the previous poll.

        Only the side-effect-free stages run ahead: batches are applied and committed one after
        the other, in offset order. If preparing or applying fails, everything fetched after
        the failed batch is dropped and the partitions are rewound to their first unapplied
        record, then the loop backs off and polls again.
        """
        s = self._settings
        in_flight: asyncio.Task[dict[TopicPartition, int]] | None = None
        try:
            while True:
                if self._backoff:
                    # Reliability fix (found by tests/reliability/test_database_outage.py): the
                    # first batch after a failure is applied in the background (in_flight) while
                    # this loop already polls again, so a plain sleep(self._backoff) here slept
                    # the full stale backoff (up to 10 s) even though that batch had just
                    # succeeded. Wake up as soon as a batch succeeds (_succeeded resets it).
                    self._recovered.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._recovered.wait(), self._backoff)
                try:
                    batches = await consumer.getmany(
                        timeout_ms=s.consumer_fetch_timeout_ms,
                        max_records=s.consumer_max_poll_records,
                    )
                except KafkaError as exc:
                    # aiokafka retries broker trouble itself; what surfaces here deserves backoff.
                    self._failed(f"poll failed: {type(exc).__name__}: {exc}")
                    continue
                self.progress.last_poll_at = time.monotonic()
                self._metrics.last_poll.labels(self.topic).set_to_current_time()
                prepared = [self._decode(tp, records) for tp, records in batches.items() if records]
                failed = await self._prepare_all(prepared)
                if in_flight is not None:
                    failed = {**failed, **await in_flight}
                    in_flight = None
                if failed:
                    # Nothing fetched after a failure is applied: rewind, back off, poll again.
                    self._backoff = max(self._backoff, self._initial_backoff)
                    rewind = dict(failed)
                    for batch in prepared:
                        rewind.setdefault(batch.tp, batch.records[0].offset)
                    self._rewind(consumer, rewind)
                elif prepared:
                    in_flight = asyncio.create_task(self._apply_all(consumer, prepared))
                await self._update_lag(consumer)
        finally:
            if in_flight is not None:
                if not in_flight.done():
                    in_flight.cancel()  # its transaction rolls back; its offsets stay uncommitted
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await in_flight

    def _rewind(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            # Revoked meanwhile: its new owner starts at the committed offset anyway.
            with contextlib.suppress(IllegalStateError, AssertionError):
                consumer.seek(tp, offset)

    # -- one partition batch ---------------------------------------------------------------

    def _decode(self, tp: TopicPartition, records: Sequence[Record]) -> _Prepared[T, P]:
        """Decode (pure): good messages for the handler, undecodable ones for the DLQ."""
        prepared: _Prepared[T, P] = _Prepared(tp, records)
        for record in records:
            try:
                prepared.batch.append(Inbound(record, self._handler.decode(record)))
            except PoisonMessage as exc:
                prepared.poison.append(DeadLetter(record, exc.reason, exc.error))
        return prepared

    async def _prepare_all(self, prepared: Sequence[_Prepared[T, P]]) -> dict[TopicPartition, int]:
        """Run the handler's read-only stage; the first offset of each batch where it failed."""
        failed: dict[TopicPartition, int] = {}
        for batch in prepared:
            if not batch.batch:
                continue
            try:
                batch.plan = await self._handler.prepare(batch.batch)
                # The plan is all apply needs: free the decoded messages now rather than keep
                # them alive (and in the garbage collector's way) until the batch is applied.
                batch.batch_records = [item.record for item in batch.batch]
                batch.batch = []
            except Exception as exc:  # transient, like a failed apply
                self._failed(
                    f"{type(exc).__name__}: {exc}", tp=batch.tp, records=batch.records, exc=exc
                )
                failed[batch.tp] = batch.records[0].offset
        return failed

    async def _apply_all(
        self, consumer: AIOKafkaConsumer, prepared: Sequence[_Prepared[T, P]]
    ) -> dict[TopicPartition, int]:
        """Apply each partition batch in turn; the first offset of each that failed."""
        failed: dict[TopicPartition, int] = {}
        for batch in prepared:
            if not await self._apply(consumer, batch):
                failed[batch.tp] = batch.records[0].offset
        return failed

    async def _apply(self, consumer: AIOKafkaConsumer, prepared: _Prepared[T, P]) -> bool:
        """Handle, dead-letter, commit. False on a transient failure (nothing committed)."""
        tp, records = prepared.tp, prepared.records
        async with self._lock:
            if tp not in consumer.assignment():
                # Revoked after this poll: the new owner re-reads from the committed offset.
                return True
            started = time.perf_counter()
            self._metrics.consumed.labels(tp.topic).inc(len(records))
            self._metrics.batch_size.labels(tp.topic).observe(len(records))
            poison = list(prepared.poison)
            try:
                plan = prepared.plan
                outcome = BatchOutcome() if plan is None else await self._handler.apply(plan)
                poison.extend(
                    DeadLetter(prepared.batch_records[index], exc.reason, exc.error)
                    for index, exc in sorted(outcome.poisoned.items())
                )
                await self._dead_letters.publish(poison, group_id=self.group_id)
            except Exception as exc:  # transient: retry the whole batch, commit nothing
                self._failed(f"{type(exc).__name__}: {exc}", tp=tp, records=records, exc=exc)
                return False
            self._pending[tp] = records[-1].offset + 1
            await self._commit_pending(consumer, {tp})
            self._succeeded()
            self._metrics.processed.labels(tp.topic, "applied").inc(outcome.applied)
            self._metrics.processed.labels(tp.topic, "duplicate").inc(outcome.duplicates)
            for letter in poison:
                self._metrics.dead_lettered.labels(tp.topic, letter.reason).inc()
            self._metrics.batch_seconds.labels(tp.topic).observe(time.perf_counter() - started)
            return True

    async def _commit_pending(self, consumer: AIOKafkaConsumer, tps: set[TopicPartition]) -> None:
        offsets = {tp: self._pending[tp] for tp in tps if tp in self._pending}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: another member owns the partition now and will re-read from
            # the last committed offset. Redelivered events are no-ops (idempotent handler).
            logger.warning(
                "offset commit rejected after rebalance; records will be redelivered",
                extra={"offsets": {str(tp): o for tp, o in offsets.items()}, "error": str(exc)},
            )
            for tp in offsets:
                self._pending.pop(tp, None)
            return
        except KafkaError as exc:
            # Keep them pending: the next batch, a revoke or the shutdown commits them.
            logger.warning("offset commit failed; will retry", extra={"error": str(exc)})
            return
        for tp, offset in offsets.items():
            if self._pending.get(tp) == offset:
                del self._pending[tp]
            self.progress.committed[tp] = offset
            self._metrics.committed_offset.labels(tp.topic, str(tp.partition)).set(offset)

    def _failed(
        self,
        error: str,
        *,
        tp: TopicPartition | None = None,
        records: Sequence[Record] = (),
        exc: BaseException | None = None,
    ) -> None:
        now = time.monotonic()
        progress = self.progress
        progress.consecutive_failures += 1
        progress.last_error = error
        if progress.failing_since is None:
            progress.failing_since = now
        self._backoff = min(max(self._backoff * 2, self._initial_backoff), self._max_backoff)
        if tp is not None:
            self._metrics.batch_failures.labels(tp.topic).inc()
        logger.warning(
            "consumer batch failed; retrying from the last committed offset",
            exc_info=exc,
            extra={
                "topic": self.topic,
                "partition": None if tp is None else tp.partition,
                "first_offset": records[0].offset if records else None,
                "records": len(records),
                "attempt": progress.consecutive_failures,
                "retry_in_s": self._backoff,
            },
        )

    def _succeeded(self) -> None:
        progress = self.progress
        if progress.consecutive_failures:
            logger.info(
                "consumer recovered",
                extra={"topic": self.topic, "after_failures": progress.consecutive_failures},
            )
        progress.consecutive_failures = 0
        progress.failing_since = None
        progress.last_error = None
        progress.last_batch_at = time.monotonic()
        self._backoff = 0.0
        self._recovered.set()

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in list(self.progress.assigned):
            try:
                highwater = consumer.highwater(tp)
                # Not yet applied = behind the last commit (or, before any, the fetch position).
                done = self.progress.committed.get(tp)
                if done is None:
                    done = await consumer.position(tp)
            except (AssertionError, IllegalStateError, KafkaError):
                continue  # not assigned any more, or no fetch response yet
            if highwater is None:
                continue
            lag = max(0, highwater - done)
            self.progress.lag[tp] = lag
            self._metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

    # -- rebalance -------------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        # Waits for the batch in flight (its commit included), then saves what is pending.
        async with self._lock:
            consumer = self._consumer
            if consumer is not None:
                await self._commit_pending(consumer, revoked)
            for tp in revoked:
                self._pending.pop(tp, None)
        self._forget(revoked)
        if revoked:
            logger.info(
                "partitions revoked", extra={"partitions": sorted(str(tp) for tp in revoked)}
            )

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.progress.assigned = set(assigned)
        self._metrics.assigned_partitions.labels(self.topic).set(len(assigned))
        logger.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})

    def _forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self.progress.assigned.discard(tp)
            self.progress.lag.pop(tp, None)
            self.progress.committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                self._metrics.lag.remove(tp.topic, str(tp.partition))
        self._metrics.assigned_partitions.labels(self.topic).set(len(self.progress.assigned))

    def _clear_assignment(self) -> None:
        self._forget(set(self.progress.assigned))

    # -- health ----------------------------------------------------------------------------

    def health_check(self) -> HealthCheck:
        """Progress, not existence: polling recently, batches not failing for long, lag."""
        stall = self._settings.health_consumer_stall_seconds

        async def check() -> CheckResult:
            now = time.monotonic()
            p = self.progress
            poll_age = None if p.last_poll_at is None else round(now - p.last_poll_at, 3)
            details: dict[str, Any] = {
                "topic": self.topic,
                "group_id": self.group_id,
                "running": p.running,
                "assigned_partitions": sorted(tp.partition for tp in p.assigned),
                "last_poll_age_s": poll_age,
                "lag": {str(tp.partition): lag for tp, lag in sorted(p.lag.items())},
                "total_lag": sum(p.lag.values()),
                "committed_offsets": {
                    str(tp.partition): offset for tp, offset in sorted(p.committed.items())
                },
            }
            if p.consecutive_failures:
                details["consecutive_failures"] = p.consecutive_failures
                details["last_error"] = p.last_error
            if p.last_poll_at is None:
                # Starting: joining the group may take a moment, but not forever.
                ok = now - p.created_at < stall
                if not ok:
                    details["error"] = f"no poll completed within {stall:g}s of start"
            elif now - p.last_poll_at >= stall:
                ok = False
                details["error"] = f"no poll for {now - p.last_poll_at:.1f}s (limit {stall:g}s)"
            elif p.failing_since is not None and now - p.failing_since >= stall:
                ok = False
                details["error"] = f"batches failing for {now - p.failing_since:.1f}s"
            else:
                ok = True
            return CheckResult(ok=ok, details=details)

        return check
