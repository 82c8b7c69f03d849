"""LedgerHandler on a real PostgreSQL: ledger and effects in one transaction, duplicates skipped,
an event the database refuses set aside as poison while the rest of its batch is stored."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging.batch import BatchOutcome, Inbound
from class_management_service.messaging.decoder import DecodedEvent, EventDecoder
from class_management_service.messaging.envelope import new_envelope
from class_management_service.messaging.ledger import ProcessedEvent
from class_management_service.messaging.ledger_handler import LedgerHandler
from tests.fakes.broker import FakeRecord

TOPIC = "scores"


class ScoreV1(BaseModel):
    score: int


async def store_scores(session: AsyncSession, events: Sequence[DecodedEvent[ScoreV1]]) -> None:
    await session.execute(
        text("INSERT INTO scores (event_id, score) VALUES (:id, :score)"),
        [{"id": event.event_id, "score": event.payload.score} for event in events],
    )


def record(offset: int, score: int, event_id: uuid.UUID | None = None) -> FakeRecord:
    body = new_envelope(
        event_type="score.v1",
        data={"score": score},
        correlation_id=uuid.uuid4(),
        partition_key="k",
        event_id=event_id,
    )
    return FakeRecord(TOPIC, 0, offset, None, body.model_dump_json().encode())


@pytest.fixture
async def handler(
    session_factory: async_sessionmaker[AsyncSession],
) -> LedgerHandler[ScoreV1]:
    async with session_factory() as session:
        await session.execute(
            text("CREATE TABLE scores (event_id uuid PRIMARY KEY, score int CHECK (score >= 0))")
        )
        await session.commit()
    return LedgerHandler(EventDecoder(ScoreV1, {"score.v1"}), session_factory, store_scores)


async def handle(handler: LedgerHandler[ScoreV1], records: Sequence[FakeRecord]) -> BatchOutcome:
    batch = [Inbound(r, handler.decode(r)) for r in records]
    return await handler.apply(await handler.prepare(batch))


async def stored(session_factory: async_sessionmaker[AsyncSession]) -> tuple[list[int], int]:
    async with session_factory() as session:
        scores = list(
            (await session.scalars(text("SELECT score FROM scores ORDER BY score"))).all()
        )
        ledger = (await session.scalars(text("SELECT count(*) FROM processed_events"))).one()
    return scores, int(ledger)


async def test_a_refused_event_is_poison_and_the_rest_of_its_batch_is_stored(
    handler: LedgerHandler[ScoreV1], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    records = [record(0, 1), record(1, -5), record(2, 3)]
    outcome = await handle(handler, records)
    assert (outcome.applied, outcome.duplicates) == (2, 0)
    assert {index: poison.reason for index, poison in outcome.poisoned.items()} == {1: "data_error"}
    assert "CheckViolation" in outcome.poisoned[1].error
    # The refused event left no ledger row: only the two stored events are recorded.
    assert await stored(session_factory) == ([1, 3], 2)


async def test_redelivered_and_repeated_events_are_stored_once(
    handler: LedgerHandler[ScoreV1], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    same = uuid.uuid4()
    first = await handle(handler, [record(0, 7, same), record(1, 7, same)])
    again = await handle(handler, [record(0, 7, same)])
    assert (first.applied, first.duplicates) == (1, 1)
    assert (again.applied, again.duplicates) == (0, 1)
    assert await stored(session_factory) == ([7], 1)
    async with session_factory() as session:
        row = await session.get(ProcessedEvent, same)
    assert row is not None
    assert row.topic == TOPIC
