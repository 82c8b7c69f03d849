"""Dead letters that cannot go to the dead-letter topic are kept in PostgreSQL instead.

A poison record the broker accepted can still be too large for the dead-letter topic once the
dead-letter headers are added (or the topic's limit is smaller): the producer refuses it (see
:mod:`.producer`), and it lands here, so it can never block its partition. A table cannot fail
on size (``bytea`` holds up to 1 GB). Unique on (topic, partition, offset): a redelivered poison
record is stored once.

What operators did with a letter, of the table or of the dead-letter topic (whose records
cannot be changed), is a :class:`DeadLetterDisposition`; :mod:`.dead_letter_replay` replays and
discards, :mod:`.dead_letter_reader` lists both kinds of letter.
"""

from __future__ import annotations

import base64
import enum
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
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


class LetterStatus(enum.StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


class DeadLetterDisposition(Base):
    """What an operator did with one dead letter; a letter without a row is open.

    ``letter_id`` names the letter wherever it lives (``dead_letter_reader.topic_letter_id`` /
    ``table_letter_id``); ``replay_count`` counts replays, also of a letter discarded later.
    """

    __tablename__ = "dead_letter_dispositions"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'replayed', 'discarded')", name="status"),
    )

    letter_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    replay_count: Mapped[int] = mapped_column(Integer, server_default="0")
    note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


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
