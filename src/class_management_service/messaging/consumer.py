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
jittered exponential backoff (:func:`~class_management_service.retry.backoff_seconds`) and polls
again, so it keeps polling (no ``max_poll_interval`` eviction) and an event is only ever passed
once its effects are committed. Handlers must therefore be idempotent, which is also what makes
redelivery after a crash or a rebalance harmless.

Throughput: steps 1-2 of the next poll (decoding, planning, read-only queries) run while steps
3-5 of the current poll wait on the database, giving the event loop a turn every few records
(:mod:`.cooperative`) so the write in flight keeps going; batches are still applied and
committed in order.

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
from typing import Generic

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from class_management_service.messaging.batch import (
    BatchHandler,
    BatchOutcome,
    P,
    T,
)
from class_management_service.messaging.broker_client import (
    BrokerClient,
    BrokerClientFactory,
    RebalanceListener,
    kafka_client,
)
from class_management_service.messaging.consumer_health import ConsumerProgress, progress_check
from class_management_service.messaging.consumer_metrics import ConsumerMetrics
from class_management_service.messaging.dead_letter import DeadLetter, DeadLetterSink
from class_management_service.messaging.failures import FailureBackoff
from class_management_service.messaging.gc_pause import collector_paused
from class_management_service.messaging.offsets import PartitionOffsets
from class_management_service.messaging.poll_batch import PollBatch, decode
from class_management_service.observability.health import HealthCheck
from class_management_service.settings import ConsumerSettings

logger = logging.getLogger(__name__)


class KafkaBatchConsumer(Generic[T, P]):
    """A supervisor :class:`Worker`: consumes ``topic`` in ``group_id`` until cancelled."""

    def __init__(
        self,
        settings: ConsumerSettings,
        handler: BatchHandler[T, P],
        *,
        dead_letters: DeadLetterSink,
        metrics: ConsumerMetrics,
        client: BrokerClientFactory = kafka_client,
    ) -> None:
        self._settings = settings
        self.topic = settings.topic
        self.group_id = settings.group_id
        self._handler = handler
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._client = client
        self._consumer: BrokerClient | None = None
        # Held while a partition batch is handled and committed, and while a revoke commits.
        self._lock = asyncio.Lock()
        self.progress = ConsumerProgress(created_at=time.monotonic())
        self._offsets = PartitionOffsets(self.topic, self.progress, metrics)
        self._failures = FailureBackoff(settings, self.progress, metrics)

    @property
    def name(self) -> str:
        return self._settings.name

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        consumer = self._client(self._settings)
        consumer.subscribe(
            [self.topic], listener=RebalanceListener(self.on_revoked, self.on_assigned)
        )
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
                    await self._offsets.commit(consumer, set(self._offsets.pending))
            except Exception:
                logger.warning("final offset commit failed", exc_info=True)
            finally:
                self._consumer = None
                await consumer.stop()
                self._offsets.forget_all()
                logger.info(
                    "consumer left group", extra={"topic": self.topic, "group_id": self.group_id}
                )

    async def _poll_forever(self, consumer: BrokerClient) -> None:
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
                await self._failures.wait()
                try:
                    batches = await consumer.getmany(
                        timeout_ms=s.fetch_timeout_ms,
                        max_records=s.max_poll_records,
                    )
                except KafkaError as exc:
                    # aiokafka retries broker trouble itself; what surfaces here deserves backoff.
                    self._failures.failed(f"poll failed: {type(exc).__name__}: {exc}")
                    continue
                self.progress.last_poll_at = time.monotonic()
                self._metrics.last_poll.labels(self.topic).set_to_current_time()
                with collector_paused():  # until the decoded messages are let go (gc_pause)
                    prepared = [
                        await decode(self._handler, tp, rs) for tp, rs in batches.items() if rs
                    ]
                    failed = await self._prepare_all(prepared)
                if in_flight is not None:
                    failed = {**failed, **await in_flight}
                    in_flight = None
                if failed:
                    # Nothing fetched after a failure is applied: rewind, back off (the failure set
                    # the delay), poll again.
                    rewind = dict(failed)
                    for batch in prepared:
                        rewind.setdefault(batch.tp, batch.records[0].offset)
                    self._rewind(consumer, rewind)
                elif prepared:
                    in_flight = asyncio.create_task(self._apply_all(consumer, prepared))
                    # Its first statement goes out before the next poll's first slice of
                    # decoding, not after it (the database would wait for that slice).
                    await asyncio.sleep(0)
                await self._offsets.update_lag(consumer)
        finally:
            if in_flight is not None:
                if not in_flight.done():
                    in_flight.cancel()  # its transaction rolls back; its offsets stay uncommitted
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await in_flight

    def _rewind(self, consumer: BrokerClient, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            # Revoked meanwhile: its new owner starts at the committed offset anyway.
            with contextlib.suppress(IllegalStateError, AssertionError):
                consumer.seek(tp, offset)

    # -- one partition batch ---------------------------------------------------------------

    async def _prepare_all(self, prepared: Sequence[PollBatch[T, P]]) -> dict[TopicPartition, int]:
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
                self._failures.failed(
                    f"{type(exc).__name__}: {exc}", tp=batch.tp, records=batch.records, exc=exc
                )
                failed[batch.tp] = batch.records[0].offset
        return failed

    async def _apply_all(
        self, consumer: BrokerClient, prepared: Sequence[PollBatch[T, P]]
    ) -> dict[TopicPartition, int]:
        """Apply each partition batch in turn; the first offset of each that failed."""
        failed: dict[TopicPartition, int] = {}
        for batch in prepared:
            if not await self._apply(consumer, batch):
                failed[batch.tp] = batch.records[0].offset
        return failed

    async def _apply(self, consumer: BrokerClient, prepared: PollBatch[T, P]) -> bool:
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
                self._failures.failed(
                    f"{type(exc).__name__}: {exc}", tp=tp, records=records, exc=exc
                )
                return False
            self._offsets.pending[tp] = records[-1].offset + 1
            await self._offsets.commit(consumer, {tp})
            self._failures.succeeded()
            self._metrics.processed.labels(tp.topic, "applied").inc(outcome.applied)
            self._metrics.processed.labels(tp.topic, "duplicate").inc(outcome.duplicates)
            for letter in poison:
                self._metrics.dead_lettered.labels(tp.topic, letter.reason).inc()
            self._metrics.batch_seconds.labels(tp.topic).observe(time.perf_counter() - started)
            return True

    # -- rebalance -------------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        # Waits for the batch in flight (its commit included), then saves what is pending.
        async with self._lock:
            consumer = self._consumer
            if consumer is not None:
                await self._offsets.commit(consumer, revoked)
            self._offsets.forget(revoked)
        if revoked:
            logger.info(
                "partitions revoked", extra={"partitions": sorted(str(tp) for tp in revoked)}
            )

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._offsets.assigned(assigned)
        logger.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})

    # -- health ----------------------------------------------------------------------------

    def health_check(self) -> HealthCheck:
        return progress_check(
            self.progress,
            topic=self.topic,
            group_id=self.group_id,
            stall_seconds=self._settings.stall_seconds,
        )
