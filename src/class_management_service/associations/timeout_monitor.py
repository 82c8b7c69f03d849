"""Confirms batches nobody reviewed within ``validation_timeout_hours``.

A batch times out when one of its essays is still undecided (``pending_validation`` or
``no_match``) longer than the timeout and the batch is not finalized. Then every undecided essay
is decided by :func:`decisions.decide_timeout` — a suggestion with confidence >= the threshold
becomes ``timeout_confirmed``; a weaker suggestion, or no suggestion, leaves the essay without a
student (``rejected``, validation_method ``timeout``, student_id NULL) — essays the teacher
already decided keep their decision, and the batch is finalized with ``timeout_triggered=true``.

Several replicas may run this at once: each batch is processed in its own short transaction that
locks the batch's rows with ``FOR UPDATE SKIP LOCKED`` and skips the batch unless it got *all*
of them (someone else — another monitor or a teacher's request — is working on it), then
re-checks under the lock that the batch is still open and still overdue. A batch a teacher
finalized is never touched or re-published.

"Overdue" is measured on the database's clock (``now()``), the clock that stamped the rows'
``created_at``: a replica whose own clock runs ahead must not decide a batch that is seconds old.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.confirmation import finalize_if_complete
from class_management_service.associations.decisions import (
    UNDECIDED_STATUSES,
    decide_timeout,
)
from class_management_service.associations.domain import SYSTEM_ACTOR, AssociationStatus
from class_management_service.associations.history import write_transitions
from class_management_service.associations.models import BatchConfirmation, EssayStudentAssociation
from class_management_service.associations.service import (
    LockedRow,
    batch_origin,
    is_finalized,
    lock_batch,
)
from class_management_service.associations.timeout_metrics import TimeoutMetrics
from class_management_service.errors import DATABASE_UNAVAILABLE
from class_management_service.notifications import payloads as notifications
from class_management_service.notifications.outbox import add_notification
from class_management_service.observability.context import continued_trace
from class_management_service.settings import Settings
from class_management_service.workers.supervisor import Backoff

logger = logging.getLogger(__name__)


@dataclass
class TimeoutPass:
    finalized: list[uuid.UUID]
    skipped: int = 0


class TimeoutMonitor:
    name = "timeout-monitor"

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        metrics: TimeoutMetrics,
    ) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._timeout = timedelta(hours=settings.validation_timeout_hours)
        self.backoff = Backoff()
        self._metrics = metrics

    async def run(self) -> None:
        while True:
            try:
                outcome = await self.run_once()
            except DATABASE_UNAVAILABLE as exc:
                await self.backoff.wait_after(exc, worker=self.name)
                continue
            self.backoff.reset()
            if outcome.finalized:
                logger.info(
                    "validation timeout finalized batches",
                    extra={"worker": self.name, "batches": len(outcome.finalized)},
                )
            await asyncio.sleep(self._settings.timeout_monitor_interval_seconds)

    async def run_once(self) -> TimeoutPass:
        """Finalize every overdue batch this replica can claim; returns what it did."""
        outcome = TimeoutPass(finalized=[])
        attempted: set[uuid.UUID] = set()
        while True:
            candidates = [
                batch_id for batch_id in await self._overdue_batches() if batch_id not in attempted
            ]
            if not candidates:
                return outcome
            for batch_id in candidates:
                attempted.add(batch_id)
                try:
                    done = await self._time_out_batch(batch_id)
                except Exception:
                    # One broken batch must not stop the others; it is retried on the next pass.
                    logger.exception(
                        "validation timeout failed for batch", extra={"batch_id": str(batch_id)}
                    )
                    done = False
                if done:
                    outcome.finalized.append(batch_id)
                else:
                    outcome.skipped += 1

    async def _overdue_batches(self) -> list[uuid.UUID]:
        a = EssayStudentAssociation
        oldest = func.min(a.created_at)
        query = (
            select(a.batch_id)
            .where(
                a.status.in_([status.value for status in UNDECIDED_STATUSES]),
                a.created_at <= func.now() - self._timeout,
                ~exists().where(BatchConfirmation.batch_id == a.batch_id),
            )
            .group_by(a.batch_id)
            .order_by(oldest)
            .limit(self._settings.timeout_monitor_batch_size)
        )
        async with self._session_factory() as session:
            return list((await session.execute(query)).scalars())

    @staticmethod
    async def _claim_batch(session: AsyncSession, batch_id: uuid.UUID) -> list[LockedRow] | None:
        """Lock all the batch's rows without waiting, or none (None: someone else is on it).

        The batch's first row (lowest id) is the gate: teachers lock rows in id order, so
        whoever holds the first row owns the batch, and two monitors cannot each grab part of
        it (SKIP LOCKED over all rows alone would let them interleave and both give up).
        """
        a = EssayStudentAssociation
        first_id = (
            await session.execute(
                select(a.id).where(a.batch_id == batch_id).order_by(a.id).limit(1)
            )
        ).scalar_one_or_none()
        if first_id is None:
            return None
        gate = await session.execute(
            select(a.id).where(a.id == first_id).with_for_update(skip_locked=True)
        )
        if gate.first() is None:
            return None
        rows = await lock_batch(session, batch_id=batch_id, skip_locked=True)
        total = (
            await session.execute(select(func.count()).where(a.batch_id == batch_id))
        ).scalar_one()
        return rows if rows and len(rows) == total else None

    async def _time_out_batch(self, batch_id: uuid.UUID) -> bool:
        async with self._session_factory() as session, session.begin():
            # The database's time: the transaction's start, as now() in the rows it writes.
            now = (await session.execute(select(func.now()))).scalar_one()
            cutoff = now - self._timeout
            rows = await self._claim_batch(session, batch_id)
            if rows is None:
                return False  # busy: another monitor or a teacher holds (part of) the batch
            if await is_finalized(session, batch_id):
                return False
            if not any(
                row.state.status in UNDECIDED_STATUSES and row.created_at <= cutoff for row in rows
            ):
                return False  # decided or no longer overdue since the scan
            transitions = decide_timeout(
                (row.state for row in rows), threshold=self._settings.timeout_confidence_threshold
            )
            # The events continue the correlation and trace of the NLP event behind the batch.
            correlation_id, trace_context = batch_origin(rows)
            await write_transitions(
                session,
                [(row.id, row.state) for row in rows],
                transitions,
                validated_by=None,
                actor=SYSTEM_ACTOR,
                correlation_id=correlation_id,
                now=now,
            )
            with continued_trace(trace_context, correlation_id=correlation_id):
                finalized = await finalize_if_complete(
                    session,
                    batch_id=batch_id,
                    timeout_triggered=True,
                    now=now,
                    correlation_id=correlation_id,
                )
                if finalized is None:
                    # Cannot happen under the lock (checked above); never write without the event.
                    raise RuntimeError(f"batch {batch_id} could not be finalized after its timeout")
                add_notification(
                    session,
                    notifications.validation_timeout_processed(
                        teacher_id=finalized.teacher_id,
                        batch_id=batch_id,
                        class_id=finalized.class_id,
                        auto_confirmed=sum(
                            t.status == AssociationStatus.TIMEOUT_CONFIRMED for t in transitions
                        ),
                        timeout_hours=self._settings.validation_timeout_hours,
                        correlation_id=correlation_id,
                        now=now,
                    ),
                )
        states = {row.state.essay_id: row.state for row in rows}
        for transition in transitions:
            if transition.status == AssociationStatus.TIMEOUT_CONFIRMED:
                self._metrics.auto_confirmed.inc()
            else:
                previous = states[transition.essay_id].status
                reason = "no_match" if previous == AssociationStatus.NO_MATCH else "low_confidence"
                self._metrics.left_unassigned.labels(reason).inc()
        self._metrics.batches.inc()
        logger.info(
            "batch finalized by validation timeout",
            extra={
                "batch_id": str(batch_id),
                "event_id": str(finalized.event_id),
                "auto_confirmed": finalized.payload.validation_summary["confirmed"],
            },
        )
        return True
