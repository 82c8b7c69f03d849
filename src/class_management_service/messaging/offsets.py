"""A consumer's partitions: offsets done but not yet committed, commits, lag, assignment."""

from __future__ import annotations

import contextlib
import logging

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from class_management_service.messaging.broker_client import BrokerClient
from class_management_service.messaging.consumer_health import ConsumerProgress
from class_management_service.messaging.consumer_metrics import ConsumerMetrics

logger = logging.getLogger(__name__)


class PartitionOffsets:
    def __init__(self, topic: str, progress: ConsumerProgress, metrics: ConsumerMetrics) -> None:
        self._topic = topic
        self._progress = progress
        self._metrics = metrics
        # Next offset to commit per partition, for work done but not yet committed.
        self.pending: dict[TopicPartition, int] = {}

    async def commit(self, consumer: BrokerClient, tps: set[TopicPartition]) -> None:
        """Commit what is pending for ``tps``; a failure leaves it pending or gives it up."""
        offsets = {tp: self.pending[tp] for tp in tps if tp in self.pending}
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
                self.pending.pop(tp, None)
            return
        except KafkaError as exc:
            # Keep them pending: the next batch, a revoke or the shutdown commits them.
            logger.warning("offset commit failed; will retry", extra={"error": str(exc)})
            return
        for tp, offset in offsets.items():
            if self.pending.get(tp) == offset:
                del self.pending[tp]
            self._progress.committed[tp] = offset
            self._metrics.committed_offset.labels(tp.topic, str(tp.partition)).set(offset)

    async def update_lag(self, consumer: BrokerClient) -> None:
        for tp in list(self._progress.assigned):
            try:
                highwater = consumer.highwater(tp)
                # Not yet applied = behind the last commit (or, before any, the fetch position).
                done = self._progress.committed.get(tp)
                if done is None:
                    done = await consumer.position(tp)
            except (AssertionError, IllegalStateError, KafkaError):
                continue  # not assigned any more, or no fetch response yet
            if highwater is None:
                continue
            lag = max(0, highwater - done)
            self._progress.lag[tp] = lag
            self._metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

    def assigned(self, tps: set[TopicPartition]) -> None:
        self._progress.assigned = set(tps)
        self._metrics.assigned_partitions.labels(self._topic).set(len(tps))

    def forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self.pending.pop(tp, None)
            self._progress.assigned.discard(tp)
            self._progress.lag.pop(tp, None)
            self._progress.committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                self._metrics.lag.remove(tp.topic, str(tp.partition))
        self._metrics.assigned_partitions.labels(self._topic).set(len(self._progress.assigned))

    def forget_all(self) -> None:
        self.forget(set(self._progress.assigned))
