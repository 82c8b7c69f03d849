"""The :class:`BatchHandler` of the author-match consumer: Redis fast path, then the database.

The Redis fast path (:class:`IdempotencyCache`) spares the planning of events it marks
completed, but such an event is skipped only if ``processed_events`` confirms it (one indexed
read); a mark the database does not confirm (a fresh or restored database, a hand-set key) is
ignored and the event processed. Redis is optional and never decides anything on its own.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from class_management_service.associations.events import (
    AuthorMatchEvent,
    decode_author_match_event,
)
from class_management_service.associations.ingestion import AuthorMatchIngestion, IngestionPlan
from class_management_service.idempotency import IdempotencyCache
from class_management_service.messaging.batch import BatchOutcome, Inbound, Record

logger = logging.getLogger(__name__)


@dataclass
class AuthorMatchPlan:
    """A partition batch between the handler's two stages."""

    #: The event id at each position of the batch (for the outcome).
    event_ids: list[uuid.UUID]
    ingestion: IngestionPlan


class AuthorMatchHandler:
    def __init__(
        self, ingestion: AuthorMatchIngestion, cache: IdempotencyCache | None = None
    ) -> None:
        self._ingestion = ingestion
        self._cache = cache

    def decode(self, record: Record) -> AuthorMatchEvent:
        return decode_author_match_event(record.value)

    async def prepare(self, batch: Sequence[Inbound[AuthorMatchEvent]]) -> AuthorMatchPlan:
        event_ids = [item.message.event_id for item in batch]
        marked_done = await self._cache.claim(set(event_ids)) if self._cache else set()
        # Only the database can say an event's effects are there (see the module docstring).
        known_done = await self._ingestion.processed(marked_done)
        if len(known_done) < len(marked_done):
            logger.warning(
                "Redis marks events completed that the database does not hold; processing them",
                extra={"events": len(marked_done) - len(known_done)},
            )
        todo = [item for item in batch if item.message.event_id not in known_done]
        plan = await self._ingestion.prepare(
            [item.message for item in todo],
            topics=[item.record.topic for item in todo],
            # Re-decoding the record's bytes if ever needed beats keeping the payload alive.
            sources=[partial(decode_author_match_event, item.record.value) for item in todo],
        )
        return AuthorMatchPlan(event_ids, plan)

    async def apply(self, plan: AuthorMatchPlan) -> BatchOutcome:
        result = await self._ingestion.apply(plan.ingestion)
        done = set(result.applied) | set(result.duplicates)
        if self._cache and done:
            await self._cache.mark_completed(done)

        outcome = BatchOutcome(applied=len(result.applied))
        applied = set(result.applied)
        first_seen: set[uuid.UUID] = set()
        for index, event_id in enumerate(plan.event_ids):
            if event_id in result.poisoned:
                outcome.poisoned[index] = result.poisoned[event_id]
            elif event_id in applied and event_id not in first_seen:
                first_seen.add(event_id)
            else:
                # Known done in Redis or the database, or a second copy within this batch.
                outcome.duplicates += 1
        if result.applied or result.poisoned:
            logger.info(
                "author matches stored",
                extra={
                    "events": len(plan.event_ids),
                    "applied": len(result.applied),
                    "duplicates": outcome.duplicates,
                    "poisoned": len(outcome.poisoned),
                    "associations_inserted": result.inserted,
                },
            )
        return outcome
