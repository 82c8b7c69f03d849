"""Every dead letter, wherever it lives: the dead-letter topic(s) and the ``dead_letters`` table.

A letter has one id across the tooling (CLI, internal HTTP route, dispositions):
``kafka:<dead-letter topic>:<partition>:<offset>`` for a record of a dead-letter topic (Kafka
topic names have no ``:``), ``db:<uuid>`` for a row of the table. Its status (open, replayed,
discarded) comes from ``dead_letter_dispositions``, since a topic's records cannot be changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging.dead_letter import (
    DEAD_LETTER_HEADERS,
    REPLAY_COUNT_HEADER,
)
from class_management_service.messaging.dead_letter_store import (
    DeadLetterDisposition,
    LetterStatus,
    StoredDeadLetter,
    decode_headers,
)
from class_management_service.settings import Settings

TOPIC_PREFIX = "kafka:"
TABLE_PREFIX = "db:"
LETTER_ID_PATTERN = (
    r"^(kafka:[A-Za-z0-9._-]{1,249}:[0-9]{1,10}:[0-9]{1,19}"
    r"|db:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
TABLE_LOCATION = "dead_letters"


def topic_letter_id(topic: str, partition: int, offset: int) -> str:
    return f"{TOPIC_PREFIX}{topic}:{partition}:{offset}"


def table_letter_id(row_id: uuid.UUID) -> str:
    return f"{TABLE_PREFIX}{row_id}"


def dead_letter_topics(settings: Settings) -> list[str]:
    """The dead-letter topic of every consumer this service runs."""
    return [settings.author_match_consumer.dead_letter_topic]


@dataclass(frozen=True, slots=True)
class Letter:
    """One dead letter: the original record (key, value, its own headers) and why it failed."""

    id: str
    #: The dead-letter topic holding it, or ``dead_letters`` (the table).
    location: str
    original_topic: str
    original_partition: int | None
    original_offset: int | None
    key: bytes | None
    value: bytes | None
    #: The original record's headers, without the dead-letter and replay-count headers.
    headers: list[tuple[str, bytes]]
    reason: str
    error: str
    consumer_group: str
    failed_at: datetime
    #: Replays the record had been through before it was dead-lettered (its replay header).
    replays_before: int = 0
    status: LetterStatus = LetterStatus.OPEN
    replay_count: int = 0
    note: str | None = None
    disposed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """``status`` None: every status. ``topic`` is the original (source) topic."""

    status: LetterStatus | None = LetterStatus.OPEN
    reason: str | None = None
    topic: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        # A time without a zone is UTC (the service's and the database's zone).
        for name in ("since", "until"):
            moment: datetime | None = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                object.__setattr__(self, name, moment.replace(tzinfo=UTC))

    def admits(self, letter: Letter) -> bool:
        return (
            (self.status is None or letter.status is self.status)
            and (self.reason is None or letter.reason == self.reason)
            and (self.topic is None or letter.original_topic == self.topic)
            and (self.since is None or letter.failed_at >= self.since)
            and (self.until is None or letter.failed_at < self.until)
        )


async def list_letters(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], wanted: LetterFilter
) -> list[Letter]:
    """The letters ``wanted`` admits, oldest first (at most ``wanted.limit``)."""
    # The topic readers are aiokafka's (~0.03 s of CPU to import): loaded when a letter is
    # first asked for, not by every app that holds these routes.
    from class_management_service.messaging.dead_letter_topic import read_dead_letter_topic

    found = list(await _table_letters(session_factory, wanted))
    for topic in dead_letter_topics(settings):
        found += [
            _from_record(r) for r in await read_dead_letter_topic(settings, topic, wanted.since)
        ]
    found = await _with_dispositions(session_factory, found)
    found = sorted((letter for letter in found if wanted.admits(letter)), key=_oldest_first)
    return found if wanted.limit is None else found[: wanted.limit]


async def find_letter(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], letter_id: str
) -> Letter | None:
    """The letter with this id, or None (also for a topic that is no dead-letter topic)."""
    letter: Letter | None = None
    if letter_id.startswith(TABLE_PREFIX):
        async with session_factory() as session:
            row = await session.get(StoredDeadLetter, uuid.UUID(letter_id[len(TABLE_PREFIX) :]))
        letter = None if row is None else _from_row(row)
    elif letter_id.startswith(TOPIC_PREFIX):
        topic, partition, offset = letter_id[len(TOPIC_PREFIX) :].rsplit(":", 2)
        if topic in dead_letter_topics(settings):
            from class_management_service.messaging.dead_letter_topic import read_record

            record = await read_record(settings, topic, int(partition), int(offset))
            letter = None if record is None else _from_record(record)
    if letter is None:
        return None
    [letter] = await _with_dispositions(session_factory, [letter])
    return letter


def _oldest_first(letter: Letter) -> tuple[datetime, str]:
    return letter.failed_at, letter.id


async def _table_letters(
    session_factory: async_sessionmaker[AsyncSession], wanted: LetterFilter
) -> list[Letter]:
    d = StoredDeadLetter
    query = select(d)
    if wanted.reason is not None:
        query = query.where(d.reason == wanted.reason)
    if wanted.topic is not None:
        query = query.where(d.source_topic == wanted.topic)
    if wanted.since is not None:
        query = query.where(d.created_at >= wanted.since)
    if wanted.until is not None:
        query = query.where(d.created_at < wanted.until)
    async with session_factory() as session:
        return [_from_row(row) for row in (await session.scalars(query)).all()]


def _from_row(row: StoredDeadLetter) -> Letter:
    headers, replays_before = _original_headers(decode_headers(row.headers))
    return Letter(
        id=table_letter_id(row.id),
        location=TABLE_LOCATION,
        original_topic=row.source_topic,
        original_partition=row.source_partition,
        original_offset=row.source_offset,
        key=row.message_key,
        value=row.message_value,
        headers=headers,
        reason=row.reason,
        error=row.error,
        consumer_group=row.consumer_group,
        failed_at=row.created_at,
        replays_before=replays_before,
    )


def _from_record(record: Any) -> Letter:
    all_headers = [(str(name), bytes(value or b"")) for name, value in record.headers or ()]
    added = {name: value.decode(errors="replace") for name, value in all_headers}
    headers, replays_before = _original_headers(all_headers)
    try:
        failed_at = datetime.fromisoformat(added["dlq_failed_at"])
    except (KeyError, ValueError):  # not written by this service: the record's own time
        failed_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    if failed_at.tzinfo is None:
        failed_at = failed_at.replace(tzinfo=UTC)
    return Letter(
        id=topic_letter_id(record.topic, record.partition, record.offset),
        location=record.topic,
        original_topic=added.get("dlq_original_topic", ""),
        original_partition=_int_or_none(added.get("dlq_original_partition")),
        original_offset=_int_or_none(added.get("dlq_original_offset")),
        key=record.key,
        value=record.value,
        headers=headers,
        reason=added.get("dlq_reason", ""),
        error=added.get("dlq_error", ""),
        consumer_group=added.get("dlq_consumer_group", ""),
        failed_at=failed_at,
        replays_before=replays_before,
    )


def _original_headers(headers: Iterable[tuple[str, bytes]]) -> tuple[list[tuple[str, bytes]], int]:
    """The record's own headers, and how many replays its replay-count header says it had."""
    own, replays = [], 0
    for name, value in headers:
        if name == REPLAY_COUNT_HEADER:
            replays = _int_or_none(value.decode(errors="replace")) or 0
        elif name not in DEAD_LETTER_HEADERS:
            own.append((name, value))
    return own, replays


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


async def _with_dispositions(
    session_factory: async_sessionmaker[AsyncSession], letters: Sequence[Letter]
) -> list[Letter]:
    if not letters:
        return []
    d = DeadLetterDisposition
    async with session_factory() as session:
        rows = (
            await session.execute(select(d).where(d.letter_id.in_([x.id for x in letters])))
        ).scalars()
        by_id = {row.letter_id: row for row in rows}
    return [_disposed(letter, by_id.get(letter.id)) for letter in letters]


def _disposed(letter: Letter, row: DeadLetterDisposition | None) -> Letter:
    if row is None:
        return letter
    return replace(
        letter,
        status=LetterStatus(row.status),
        replay_count=row.replay_count,
        note=row.note,
        disposed_at=row.updated_at,
    )
