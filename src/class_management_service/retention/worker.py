"""The retention worker: deletes published outbox rows and processed-event records past their
windows, a batch per short transaction, safe with any number of replicas (:mod:`.statements`).

A pass deletes each table's old rows batch after batch until a batch comes back short (caught
up, or the rest is being deleted by another replica), then refreshes the gauges and the health
status, and the worker sleeps ``retention_interval_seconds``.

Ledger rows are deleted per topic, each with the window :mod:`.horizon` allows: the configured
``retention_processed_events_days``, raised (with an error in the log) to what Kafka may still
redeliver when the broker keeps the topic's records longer. Raising rather than refusing to
start: a window set too short is a configuration mistake whose safe correction is obvious, and
refusing would take the whole service (API, ingestion) down over housekeeping; the table merely
holds more rows than the operator asked for. A topic the broker has not answered for (broker
unreachable) keeps all its ledger rows until it does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.errors import DATABASE_UNAVAILABLE, describe
from class_management_service.observability.health import CheckResult, HealthCheck
from class_management_service.retention import statements
from class_management_service.retention.horizon import Redelivery, RedeliveryLookup
from class_management_service.retention.metrics import RetentionMetrics
from class_management_service.settings import Settings
from class_management_service.workers.supervisor import Backoff

logger = logging.getLogger(__name__)


class _DeleteBatch(Protocol):
    async def __call__(
        self, session_factory: async_sessionmaker[AsyncSession], *, limit: int, after: datetime
    ) -> statements.Deleted: ...


# How often the broker is asked again about topics it answered for (retention settings change
# rarely); a topic it has not answered for is asked about on every pass.
_REDELIVERY_REFRESH_SECONDS = 600.0


@dataclass
class RetentionPass:
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(statements.TABLES, 0))
    #: Topics whose ledger rows were kept because the broker has not said how long it keeps them.
    unknown_topics: list[str] = field(default_factory=list)


@dataclass
class _Status:
    """What the last completed pass saw, for /healthz."""

    finished_at: float  # monotonic
    behind: list[str]
    details: dict[str, Any]


class RetentionWorker:
    name = "retention"

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        metrics: RetentionMetrics,
        redelivery: RedeliveryLookup,
        consumed_topics: Sequence[str],
    ) -> None:
        self._session_factory = session_factory
        self._consumed_topics = set(consumed_topics)
        self._settings = settings
        self._metrics = metrics
        self._lookup = redelivery
        self._outbox_window = timedelta(days=settings.retention_outbox_published_days)
        self._ledger_window = timedelta(days=settings.retention_processed_events_days)
        self._grace = timedelta(seconds=settings.retention_grace_seconds)
        self._redelivery: dict[str, Redelivery] = {}
        self._asked_at = float("-inf")
        self._raised: dict[str, timedelta | None] = {}  # windows logged as raised, per topic
        self._status: _Status | None = None
        self.backoff = Backoff()

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except DATABASE_UNAVAILABLE as exc:
                await self.backoff.wait_after(exc, worker=self.name)
                continue
            self.backoff.reset()
            await asyncio.sleep(self._settings.retention_interval_seconds)

    async def run_once(self) -> RetentionPass:
        """Delete everything past its window that no other replica is deleting; observe."""
        outcome = RetentionPass()
        await self._drain(
            outcome,
            statements.OUTBOX_EVENTS,
            partial(statements.delete_published, window=self._outbox_window),
        )
        # The topics this service consumes are checked from the first pass on, before their
        # ledger holds anything: a window too short shows in the log at start-up.
        ledger_topics = await statements.ledger_topics(self._session_factory)
        topics = sorted(self._consumed_topics.union(ledger_topics))
        windows = await self._ledger_windows(topics)
        outcome.unknown_topics = [topic for topic in topics if topic not in windows]
        for topic, window in windows.items():
            if window is not None:
                await self._drain(
                    outcome,
                    statements.PROCESSED_EVENTS,
                    partial(statements.delete_processed, topic=topic, window=window),
                )
        await self._observe(topics, windows)
        if any(outcome.deleted.values()):
            logger.info("retention deleted old rows", extra={"deleted": outcome.deleted})
        return outcome

    async def _drain(self, outcome: RetentionPass, table: str, delete: _DeleteBatch) -> None:
        """Batch after batch, each starting where the one before ended, until one comes back
        short: caught up, or the rest is held by another replica (the next pass sees to it)."""
        limit = self._settings.retention_batch_size
        after = statements.START
        while True:
            batch = await delete(self._session_factory, limit=limit, after=after)
            outcome.deleted[table] += batch.count
            self._metrics.deleted.labels(table).inc(batch.count)
            if batch.count < limit:
                return
            after = batch.last
            await asyncio.sleep(self._settings.retention_batch_pause_seconds)

    async def _ledger_windows(self, topics: list[str]) -> dict[str, timedelta | None]:
        """Each topic's ledger window (None: keep for ever), for the topics the broker answered."""
        stale = time.monotonic() - self._asked_at > _REDELIVERY_REFRESH_SECONDS
        if topics and (stale or any(topic not in self._redelivery for topic in topics)):
            try:
                self._redelivery.update(await self._lookup(topics))
                self._asked_at = time.monotonic()
            except Exception as exc:  # the answers we have stay valid; the rest waits
                logger.warning(
                    "could not read the consumed topics' retention from the broker; their "
                    "processed-event records are kept until it answers",
                    extra={"topics": topics, "error": describe(exc)},
                )
        windows: dict[str, timedelta | None] = {}
        for topic in topics:
            redelivery = self._redelivery.get(topic)
            if redelivery is None:
                continue
            window = redelivery.window(self._ledger_window)
            windows[topic] = window
            raised = window != self._ledger_window
            if raised and self._raised.get(topic, self._ledger_window) != window:
                logger.error(
                    "the processed-event window is shorter than Kafka may redeliver this "
                    "topic's records: its records are kept longer (raise "
                    "RETENTION_PROCESSED_EVENTS_DAYS above the topic's retention.ms + segment.ms)",
                    extra={
                        "topic": topic,
                        "configured_days": self._settings.retention_processed_events_days,
                        "kept_days": None if window is None else window / timedelta(days=1),
                    },
                )
            self._raised[topic] = window
        return windows

    async def _observe(self, topics: list[str], windows: dict[str, timedelta | None]) -> None:
        sizes = await statements.table_sizes(self._session_factory)
        for table, size in sizes.items():
            self._metrics.rows.labels(table).set(size.rows)
            self._metrics.bytes.labels(table).set(size.bytes)
        published_age = await statements.oldest_published_age(self._session_factory)
        ledger_ages = await statements.oldest_processed_ages(self._session_factory, topics)
        self._metrics.oldest_age.labels(statements.OUTBOX_EVENTS).set(published_age or 0.0)
        self._metrics.oldest_age.labels(statements.PROCESSED_EVENTS).set(
            max(ledger_ages.values(), default=0.0)
        )
        behind: list[str] = []
        limit = (self._outbox_window + self._grace).total_seconds()
        if published_age is not None and published_age > limit:
            behind.append(statements.OUTBOX_EVENTS)
        for topic, age in ledger_ages.items():
            window = windows.get(topic)
            if window is not None and age > (window + self._grace).total_seconds():
                behind.append(f"{statements.PROCESSED_EVENTS}[{topic}]")
        self._status = _Status(
            finished_at=time.monotonic(),
            behind=behind,
            details={
                "oldest_published_outbox_age_seconds": round(published_age or 0.0),
                "oldest_processed_event_age_seconds": {
                    topic: round(age) for topic, age in ledger_ages.items()
                },
                "processed_event_window_days": {
                    topic: None if window is None else window / timedelta(days=1)
                    for topic, window in windows.items()
                },
                # Their records are kept until the broker says how long it keeps the topic.
                "topics_waiting_for_the_broker": [t for t in topics if t not in windows],
                "table_rows": {table: size.rows for table, size in sizes.items()},
            },
        )

    def health_check(self) -> HealthCheck:
        """``behind`` when a table's oldest row is older than its window + the grace, or no pass
        finished for an interval + the grace. Reported, not failed (/healthz stays 200): a
        replica restarted or taken out of service deletes nothing faster."""

        created_at = time.monotonic()
        overdue = self._settings.retention_interval_seconds + self._grace.total_seconds()

        async def check() -> CheckResult:
            status = self._status
            # The first pass over a year's backlog may take hours: overdue then too.
            since = time.monotonic() - (created_at if status is None else status.finished_at)
            behind = [] if status is None else list(status.behind)
            if since > overdue:
                behind.append("no pass finished")
            state = "behind" if behind else "starting" if status is None else "ok"
            details: dict[str, Any] = {"status": state}
            if behind:
                details["behind"] = behind
            if status is not None:
                details["last_pass_seconds_ago"] = round(since)
                details.update(status.details)
            return CheckResult(ok=True, details=details)

        return check
