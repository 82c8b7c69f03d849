"""Replaying and discarding dead letters (of the topic or the table alike).

A replay re-publishes the original record to the topic it was consumed from: same key, value and
headers, plus ``dlq_replay_count`` (1 on the first replay; a record dead-lettered again after a
replay keeps its count in that header, so the next replay says 2). The consumer's ledger makes a
replay of an event already stored a no-op, so replaying twice stores nothing new.

Each chunk of letters is one transaction: the letters' disposition rows are locked (an operator
replaying open letters skips those another replay holds: ``SKIP LOCKED``), the records are sent,
and only once the broker acknowledged every one are they marked replayed and committed. A failed
send marks nothing (a retry may publish a record twice, never mark one that was not sent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging.dead_letter import REPLAY_COUNT_HEADER
from class_management_service.messaging.dead_letter_reader import Letter
from class_management_service.messaging.dead_letter_store import (
    DeadLetterDisposition,
    LetterStatus,
)

REPLAY_CHUNK = 100


@dataclass
class ReplayOutcome:
    replayed: list[str] = field(default_factory=list)
    #: Letters no longer open when their turn came (another operator replayed or discarded
    #: them, or holds them right now).
    skipped: list[str] = field(default_factory=list)


async def replay_letters(
    session_factory: async_sessionmaker[AsyncSession],
    producer: Any,
    letters: Sequence[Letter],
    *,
    only_open: bool,
    progress: Callable[[int], None] | None = None,
) -> ReplayOutcome:
    """Replay ``letters`` (all of them, or with ``only_open`` those still open when locked).

    ``producer`` is an ``AIOKafkaProducer`` (normally ``SharedProducer.get()``); ``progress`` is
    called with the number of letters done after each chunk.
    """
    outcome = ReplayOutcome()
    for start in range(0, len(letters), REPLAY_CHUNK):
        chunk = letters[start : start + REPLAY_CHUNK]
        await _replay_chunk(session_factory, producer, chunk, only_open, outcome)
        if progress is not None:
            progress(len(chunk))
    return outcome


async def _replay_chunk(
    session_factory: async_sessionmaker[AsyncSession],
    producer: Any,
    chunk: Sequence[Letter],
    only_open: bool,
    outcome: ReplayOutcome,
) -> None:
    d = DeadLetterDisposition
    async with session_factory() as session, session.begin():
        await session.execute(
            insert(d)
            .values(
                [{"letter_id": letter.id, "status": LetterStatus.OPEN.value} for letter in chunk]
            )
            .on_conflict_do_nothing(index_elements=[d.letter_id])
        )
        held = {
            row.letter_id: row
            for row in await session.execute(
                select(d.letter_id, d.status, d.replay_count)
                .where(d.letter_id.in_([letter.id for letter in chunk]))
                .with_for_update(skip_locked=only_open)
            )
        }
        counts: dict[str, int] = {}
        deliveries = []
        for letter in chunk:
            row = held.get(letter.id)
            if row is None or (only_open and row.status != LetterStatus.OPEN.value):
                outcome.skipped.append(letter.id)
                continue
            counts[letter.id] = max(row.replay_count, letter.replays_before) + 1
            deliveries.append(
                await producer.send(
                    letter.original_topic,
                    value=letter.value,
                    key=letter.key,
                    headers=[
                        *letter.headers,
                        (REPLAY_COUNT_HEADER, str(counts[letter.id]).encode()),
                    ],
                )
            )
        await asyncio.gather(*deliveries)
        if counts:
            connection = await session.connection()
            await connection.execute(
                update(d)
                .where(d.letter_id == bindparam("letter"))
                .values(
                    status=LetterStatus.REPLAYED.value,
                    replay_count=bindparam("count"),
                    updated_at=func.now(),
                ),
                [{"letter": letter_id, "count": count} for letter_id, count in counts.items()],
            )
        outcome.replayed += counts


async def discard_letter(
    session_factory: async_sessionmaker[AsyncSession], letter_id: str, note: str | None
) -> None:
    """Close the letter without replaying it (its replay count is kept)."""
    d = DeadLetterDisposition
    statement = insert(d).values(
        letter_id=letter_id, status=LetterStatus.DISCARDED.value, note=note
    )
    async with session_factory() as session, session.begin():
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[d.letter_id],
                set_={
                    "status": statement.excluded.status,
                    "note": statement.excluded.note,
                    "updated_at": func.now(),
                },
            )
        )
