"""The handler of an event type whose effects are rows written beside its ledger entry.

A new consumed event type needs only its payload model, an :class:`EventDecoder` and a ``store``
function; this handler does the rest: one transaction per partition batch that records the
batch's new events in ``processed_events`` and stores them, duplicates skipped (redelivery,
a second copy in the batch), and an event whose rows the database refuses (a data error) set
aside as poison while the others are stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging import ledger
from class_management_service.messaging.batch import BatchOutcome, Inbound, PoisonMessage, Record
from class_management_service.messaging.decoder import DecodedEvent, EventDecoder, PayloadT
from class_management_service.messaging.ledger import LedgerEntry

#: Writes the effects of new events (never none) in the caller's transaction (the handler
#: commits).
Store = Callable[[AsyncSession, Sequence[DecodedEvent[PayloadT]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Pending(Generic[PayloadT]):
    #: Position in the partition batch, for the outcome.
    index: int
    topic: str
    event: DecodedEvent[PayloadT]


class LedgerHandler(Generic[PayloadT]):
    def __init__(
        self,
        decoder: EventDecoder[PayloadT],
        session_factory: async_sessionmaker[AsyncSession],
        store: Store[PayloadT],
    ) -> None:
        self._decoder = decoder
        self._session_factory = session_factory
        self._store = store

    def decode(self, record: Record) -> DecodedEvent[PayloadT]:
        return self._decoder(record.value)

    async def prepare(
        self, batch: Sequence[Inbound[DecodedEvent[PayloadT]]]
    ) -> list[_Pending[PayloadT]]:
        return [
            _Pending(index, item.record.topic, item.message) for index, item in enumerate(batch)
        ]

    async def apply(self, batch: list[_Pending[PayloadT]]) -> BatchOutcome:
        outcome = BatchOutcome()
        try:
            outcome.applied = len(await self._write(batch))
        except DBAPIError as exc:
            if not ledger.is_data_error(exc):
                raise
            # Find the offending events: each on its own.
            for item in batch:
                try:
                    outcome.applied += len(await self._write([item]))
                except DBAPIError as item_exc:
                    if not ledger.is_data_error(item_exc):
                        raise
                    reason = ledger.describe_db_error(item_exc)
                    outcome.poisoned[item.index] = PoisonMessage("data_error", reason)
        outcome.duplicates = len(batch) - outcome.applied - len(outcome.poisoned)
        return outcome

    async def _write(self, batch: Sequence[_Pending[PayloadT]]) -> set[uuid.UUID]:
        first: dict[uuid.UUID, _Pending[PayloadT]] = {}
        for item in batch:
            first.setdefault(item.event.event_id, item)
        entries = [LedgerEntry(item.event.event_id, item.topic) for item in first.values()]
        async with self._session_factory() as session:
            new = await ledger.record_new(session, entries)
            events = [item.event for item in first.values() if item.event.event_id in new]
            if events:
                await self._store(session, events)
            await session.commit()
        return new
