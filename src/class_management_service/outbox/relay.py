"""The outbox relay: publishes committed ``outbox_events`` rows to Kafka, at least once.

A pass claims due rows under a lease (:mod:`.claims`: which rows, in which order), publishes
them (:mod:`.sending`) and marks the sent ones published in a second short transaction.

Crash between publish and mark: the lease expires, a relay claims the row again and re-sends it
with the same event_id: at-least-once delivery, consumers dedupe on event_id.

Failure: ``attempts`` + 1, ``last_error``, ``next_attempt_at`` = now + :func:`retry_delay`;
after ``outbox_max_attempts`` the row becomes ``failed`` (terminal, outside the polling index,
counted in the ``outbox_failed_events`` gauge). A transient error (broker outage, leader
election: every send of a claim or only some) is not the messages' fault: the rows are
rescheduled without using up attempts, and the outage shows as a growing queue depth /
oldest-pending age instead.

Wake-up: LISTEN on channel ``outbox_events`` (the migration's AFTER INSERT trigger notifies on
commit) over a dedicated asyncpg connection; polling every ``outbox_poll_interval_seconds`` is the
safety net (missed notifications, retries that become due, a lost LISTEN connection).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.db import asyncpg_dsn, server_settings
from class_management_service.errors import DATABASE_UNAVAILABLE, describe
from class_management_service.outbox import claims
from class_management_service.outbox.claims import ClaimedEvent, FailedAttempt
from class_management_service.outbox.metrics import OutboxMetrics
from class_management_service.outbox.sending import ProducerSource, is_transient, publish
from class_management_service.retry import backoff_seconds, sleep_unless_set
from class_management_service.settings import Settings
from class_management_service.workers.supervisor import Backoff

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "outbox_events"
_MAX_ERROR_CHARS = 2000  # of a row's last_error
_GAUGE_REFRESH_SECONDS = 5.0
_LISTEN_RETRY_SECONDS = 5.0
# Failed rows' retry schedule, and a broker outage's wait between passes (jittered).
_RETRY_BASE_SECONDS, _RETRY_CAP_SECONDS = 2.0, 600.0
# During a broker outage the claimed rows are rescheduled no further out than this.
_OUTAGE_ROW_DELAY_CAP_SECONDS = 60.0


def retry_delay(attempts: int) -> float:
    """When a failed row is due again after ``attempts`` (1-based) counted attempts: 2 s, 4 s,
    8 s, ... capped at 10 min. Deterministic, unlike :func:`retry.backoff_seconds`: it is a
    per-row schedule stored in ``next_attempt_at``, not replicas retrying in lockstep."""
    exponent = min(max(attempts - 1, 0), 30)
    return float(min(_RETRY_BASE_SECONDS * (2**exponent), _RETRY_CAP_SECONDS))


@dataclass
class RelayResult:
    claimed: int = 0
    published: int = 0
    failed: int = 0
    outage: bool = False
    errors: dict[uuid.UUID, str] = field(default_factory=dict)


async def connect_listener(
    settings: Settings, on_notify: Callable[..., None]
) -> asyncpg.Connection | None:
    """A connection LISTENing on :data:`NOTIFY_CHANNEL`, or None when the database refuses
    (the relay then only polls, and tries again later)."""
    connection: asyncpg.Connection | None = None
    try:
        connection = await asyncpg.connect(
            asyncpg_dsn(settings.database_url),
            timeout=settings.database_connect_timeout_seconds,
            server_settings=server_settings(settings),
        )
        await connection.add_listener(NOTIFY_CHANNEL, on_notify)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if connection is not None:
            connection.terminate()
        logger.warning(
            "outbox LISTEN unavailable; polling only",
            extra={"error": describe(exc, _MAX_ERROR_CHARS)},
        )
        return None
    return connection


class OutboxRelay:
    """A supervisor worker; safe to run on any number of replicas at once."""

    name = "outbox-relay"

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        producer: ProducerSource,
        settings: Settings,
        metrics: OutboxMetrics,
    ) -> None:
        self._session_factory = session_factory
        self._producer = producer
        self._settings = settings
        self._metrics = metrics
        request_timeout = settings.producer_request_timeout_ms / 1000
        # The lease must outlast a publish (bounded by publish_timeout) by a wide margin.
        lease_seconds = settings.outbox_lease_seconds or max(30.0, 3 * request_timeout)
        self._lease = timedelta(seconds=lease_seconds)
        self._publish_timeout = max(lease_seconds / 2, 0.1)
        self._wake = asyncio.Event()
        self._gauges_refreshed_at = float("-inf")
        self._consecutive_outages = 0
        self.backoff = Backoff()  # database failures; broker outages: _consecutive_outages

    # ---- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        listener: asyncpg.Connection | None = None
        next_listen_attempt = 0.0
        try:
            while True:
                if (listener is None or listener.is_closed()) and (
                    time.monotonic() >= next_listen_attempt
                ):
                    listener = await connect_listener(self._settings, self._on_notify)
                    next_listen_attempt = time.monotonic() + _LISTEN_RETRY_SECONDS
                # Cleared before claiming: a NOTIFY arriving during the claim keeps it set.
                self._wake.clear()
                try:
                    result = await self.run_once()
                    if time.monotonic() - self._gauges_refreshed_at >= _GAUGE_REFRESH_SECONDS:
                        await self.refresh_gauges()
                except DATABASE_UNAVAILABLE as exc:
                    # Claimed rows stay leased and are sent again once the lease runs out.
                    await self.backoff.wait_after(exc, worker=self.name)
                    continue
                self.backoff.reset()
                if result.outage:
                    self._consecutive_outages += 1
                    await asyncio.sleep(
                        backoff_seconds(
                            self._consecutive_outages, _RETRY_BASE_SECONDS, _RETRY_CAP_SECONDS
                        )
                    )
                    continue
                self._consecutive_outages = 0
                if result.claimed >= self._settings.outbox_batch_size or result.published:
                    # More is probably due right now: a full batch, or the successors of the
                    # aggregates just published (a pass takes only each aggregate's first row).
                    continue
                await sleep_unless_set(self._wake, self._settings.outbox_poll_interval_seconds)
        finally:
            if listener is not None and not listener.is_closed():
                # terminate() is synchronous: safe while the task is being cancelled.
                listener.terminate()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    # ---- one pass ---------------------------------------------------------------------------

    async def run_once(self) -> RelayResult:
        """Claim due events, publish them, record the outcome. Returns what happened."""
        claimed = await claims.claim_due(
            self._session_factory, limit=self._settings.outbox_batch_size, lease=self._lease
        )
        result = RelayResult(claimed=len(claimed))
        if not claimed:
            return result
        outcomes = await publish(self._producer, claimed, within=self._publish_timeout)
        sent = [event for event in claimed if outcomes[event.id] is None]
        failures = {event.id: exc for event in claimed if (exc := outcomes[event.id]) is not None}
        if sent:
            await claims.mark_published(self._session_factory, sent)
            for event in sent:
                self._metrics.published.labels(event.topic).inc()
        if failures:
            result.outage = not sent and all(is_transient(exc) for exc in failures.values())
            await self._record_failures(
                [event for event in claimed if event.id in failures],
                failures,
                count_attempt=not result.outage,
            )
            result.errors = {
                event_id: describe(exc, _MAX_ERROR_CHARS) for event_id, exc in failures.items()
            }
        result.published, result.failed = len(sent), len(failures)
        return result

    async def _record_failures(
        self,
        events: Sequence[ClaimedEvent],
        errors: dict[uuid.UUID, BaseException],
        *,
        count_attempt: bool,
    ) -> None:
        max_attempts = self._settings.outbox_max_attempts
        attempts_made = []
        for event in events:
            # A transient error (leader election, broker restart) is never the message's
            # fault, also when other sends of the same claim went through: counting it would
            # turn a partition that stays offline for long into terminal 'failed' rows.
            counted = count_attempt and not is_transient(errors[event.id])
            attempts = event.attempts + (1 if counted else 0)
            delay = (
                retry_delay(attempts)
                if counted
                else min(retry_delay(self._consecutive_outages + 1), _OUTAGE_ROW_DELAY_CAP_SECONDS)
            )
            error = describe(errors[event.id], _MAX_ERROR_CHARS)
            attempts_made.append(FailedAttempt(event, error, timedelta(seconds=delay), counted))
            self._metrics.publish_failures.labels(event.topic).inc()
            details = {
                "event_id": str(event.id),
                "topic": event.topic,
                "attempts": attempts,
                "error": error,
            }
            if counted and attempts >= max_attempts:
                self._metrics.given_up.labels(event.topic).inc()
                logger.error("outbox event failed permanently", extra=details)
            else:
                logger.warning(
                    "outbox publish failed; will retry", extra={**details, "retry_in_s": delay}
                )
        await claims.record_failures(
            self._session_factory, attempts_made, max_attempts=max_attempts
        )

    # ---- gauges -----------------------------------------------------------------------------

    async def refresh_gauges(self) -> None:
        """Queue depth, failed count and oldest-pending age, from the table (all replicas)."""
        stats = await claims.queue_stats(self._session_factory)
        self._metrics.pending.set(stats.pending)
        self._metrics.oldest_pending_age.set(stats.oldest_pending_age_seconds)
        self._metrics.failed.set(stats.failed)
        self._gauges_refreshed_at = time.monotonic()
