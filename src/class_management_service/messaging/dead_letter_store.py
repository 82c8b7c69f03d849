"""Dead letters that cannot go to the dead-letter topic are kept in PostgreSQL instead.

A poison record the broker accepted can still be too large for the dead-letter topic once the
dead-letter headers are added (or the topic's limit is smaller): the producer refuses it (see
:mod:`.producer`), and it lands here, so it can never block its partition. A table cannot fail
on size (``bytea`` holds up to 1 GB). Unique on (topic, partition, offset): a redelivered poison
record is stored once.

:func:`replay_dead_letters` re-publishes stored letters, unchanged (key, value, original
headers), to the topic they came from and marks them replayed; an operator runs it once the cause
is fixed (issue 15 puts a CLI on it).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from class_management_service.db import Base
from class_management_service.messaging.dead_letter import MAX_ERROR_CHARS, DeadLetter

_SOURCE = ["source_topic", "source_partition", "source_offset"]


class StoredDeadLetter(Base):
    """A poison record kept in the database (it did not fit into the dead-letter topic)."""

    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("source_topic", "source_partition", "source_offset"),)

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=text("gen_random_uuid()")
    )
    source_topic: Mapped[str] = mapped_column(String(255))
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    message_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    message_value: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The record's own headers as [[name, base64 value], ...] (values are arbitrary bytes).
    headers: Mapped[list[list[str]]] = mapped_column(JSONB, server_default="[]")
    reason: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    consumer_group: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def encode_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> list[list[str]]:
    return [
        [str(name), base64.b64encode(bytes(value or b"")).decode()] for name, value in headers or ()
    ]


def decode_headers(stored: Sequence[Sequence[str]]) -> list[tuple[str, bytes]]:
    return [(name, base64.b64decode(value)) for name, value in stored]


class DeadLetterStore:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    async def add(self, letters: Sequence[DeadLetter], *, group_id: str) -> None:
        """Store the letters (one statement); a letter stored before is left as it is."""
        if not letters:
            return
        rows: list[dict[str, Any]] = [
            {
                "source_topic": letter.record.topic,
                "source_partition": letter.record.partition,
                "source_offset": letter.record.offset,
                "message_key": letter.record.key,
                "message_value": letter.record.value,
                "headers": encode_headers(letter.record.headers),
                "reason": letter.reason,
                "error": letter.error[:MAX_ERROR_CHARS],
                "consumer_group": group_id,
            }
            for letter in letters
        ]
        async with self._session_factory() as session:
            await session.execute(
                insert(StoredDeadLetter).values(rows).on_conflict_do_nothing(index_elements=_SOURCE)
            )
            await session.commit()


async def replay_dead_letters(
    session_factory: async_sessionmaker[AsyncSession],
    producer: Any,
    *,
    ids: Sequence[uuid.UUID] | None = None,
    limit: int = 100,
) -> list[uuid.UUID]:
    """Re-publish stored letters not replayed yet (``ids``, or the oldest ``limit``) to their
    source topic and mark them replayed; returns the ids replayed.

    ``producer`` is an ``AIOKafkaProducer``: normally ``SharedProducer.get()``, which refuses
    (``MessageSizeTooLargeError``, nothing sent or marked) a record that even compressed exceeds
    the topic's limit; an incompressible record right at the limit needs an uncompressed
    producer with a ``max_request_size`` above its size. The rows stay locked
    (``SKIP LOCKED``: two operators never replay the same letter at once) until the broker has
    acknowledged every record; if publishing fails nothing is marked and the error propagates.
    """
    d = StoredDeadLetter
    query = (
        select(d.id, d.source_topic, d.message_key, d.message_value, d.headers)
        .where(d.replayed_at.is_(None))
        .order_by(d.created_at, d.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if ids is not None:
        query = query.where(d.id.in_(ids))
    async with session_factory() as session:
        rows = (await session.execute(query)).all()
        if not rows:
            return []
        deliveries = [
            await producer.send(
                row.source_topic,
                value=row.message_value,
                key=row.message_key,
                headers=decode_headers(row.headers),
            )
            for row in rows
        ]
        await asyncio.gather(*deliveries)
        replayed = [row.id for row in rows]
        await session.execute(update(d).where(d.id.in_(replayed)).values(replayed_at=func.now()))
        await session.commit()
    return replayed
