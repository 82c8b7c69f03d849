"""A consumer's transient failures: the health record, the metric, the log and the backoff."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import TopicPartition

from class_management_service.messaging.batch import Record
from class_management_service.messaging.consumer_health import ConsumerProgress
from class_management_service.messaging.consumer_metrics import ConsumerMetrics
from class_management_service.retry import backoff_seconds, sleep_unless_set
from class_management_service.settings import ConsumerSettings

logger = logging.getLogger(__name__)


class FailureBackoff:
    def __init__(
        self, settings: ConsumerSettings, progress: ConsumerProgress, metrics: ConsumerMetrics
    ) -> None:
        self._settings = settings
        self._progress = progress
        self._metrics = metrics
        self._delay = 0.0
        # Set when a batch succeeds: ends a backoff wait early (see wait).
        self._recovered = asyncio.Event()

    async def wait(self) -> None:
        """Back off after a failure, until the delay passes or a batch succeeds.

        The first batch after a failure is applied in the background while the loop already
        polls again: a plain sleep would wait out a stale delay although that batch succeeded.
        """
        if not self._delay:
            return
        self._recovered.clear()
        await sleep_unless_set(self._recovered, self._delay)

    def failed(
        self,
        error: str,
        *,
        tp: TopicPartition | None = None,
        records: Sequence[Record] = (),
        exc: BaseException | None = None,
    ) -> None:
        progress = self._progress
        progress.consecutive_failures += 1
        progress.last_error = error
        if progress.failing_since is None:
            progress.failing_since = time.monotonic()
        self._delay = backoff_seconds(
            progress.consecutive_failures,
            self._settings.initial_backoff_seconds,
            self._settings.max_backoff_seconds,
        )
        if tp is not None:
            self._metrics.batch_failures.labels(tp.topic).inc()
        logger.warning(
            "consumer batch failed; retrying from the last committed offset",
            exc_info=exc,
            extra={
                "topic": self._settings.topic,
                "partition": None if tp is None else tp.partition,
                "first_offset": records[0].offset if records else None,
                "records": len(records),
                "attempt": progress.consecutive_failures,
                "retry_in_s": self._delay,
            },
        )

    def succeeded(self) -> None:
        progress = self._progress
        if progress.consecutive_failures:
            logger.info(
                "consumer recovered",
                extra={
                    "topic": self._settings.topic,
                    "after_failures": progress.consecutive_failures,
                },
            )
        progress.consecutive_failures = 0
        progress.failing_since = None
        progress.last_error = None
        progress.last_batch_at = time.monotonic()
        self._delay = 0.0
        self._recovered.set()
