"""The retention worker's statements: delete one batch of old rows, and look at the tables.

A batch is one short transaction: the oldest rows past the window, taken from the front of the
table's retention index (migration 0008) with ``FOR UPDATE SKIP LOCKED``, deleted by ``ctid``
(a TID scan: no second index lookup per row). Each batch starts its index scan at the time of
the last row the batch before it deleted (``after``): the entries of rows deleted earlier stay
in the index until vacuum, and a scan from the very front would step over all of them again,
making a backlog's batches slower and slower. ``SKIP LOCKED`` lets any number of replicas
delete at once without waiting for each other; the rows are old, so no writer (ingestion, the
relay) holds or wants them, and a delete takes only the ``ROW EXCLUSIVE`` table lock inserts
take too. Ages are measured on the database's clock, the one that stamped the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

PROCESSED_EVENTS = "processed_events"
OUTBOX_EVENTS = "outbox_events"
TABLES = (PROCESSED_EVENTS, OUTBOX_EVENTS)


def _delete_batch(table: str, stamped: str, condition: str) -> TextClause:
    """One batch of ``table``'s rows that meet ``condition``, oldest by ``stamped`` first."""
    return text(
        f"""
    WITH deleted AS (
        DELETE FROM {table} WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM {table}
            WHERE {condition}
              AND {stamped} >= :after
              AND {stamped} < now() - CAST(:window AS interval)
            ORDER BY {stamped}
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING {stamped}
    )
    SELECT count(*), max({stamped}) FROM deleted
    """  # noqa: S608 - this module's own names, no input
    )


_DELETE_PROCESSED = _delete_batch(PROCESSED_EVENTS, "processed_at", "topic = :topic")
# Failed rows stay: an operator still has to look at them (and may requeue them).
_DELETE_PUBLISHED = _delete_batch(OUTBOX_EVENTS, "published_at", "status = 'published'")

# The ledger's distinct topics by skipping along the (topic, processed_at) index: one probe
# per topic instead of reading every row.
_LEDGER_TOPICS = text(
    """
    WITH RECURSIVE topics(topic) AS (
        (SELECT topic FROM processed_events ORDER BY topic LIMIT 1)
        UNION ALL
        SELECT (
            SELECT p.topic FROM processed_events p
            WHERE p.topic > topics.topic ORDER BY p.topic LIMIT 1
        )
        FROM topics WHERE topics.topic IS NOT NULL
    )
    SELECT topic FROM topics WHERE topic IS NOT NULL
    """
)

_OLDEST_PUBLISHED = text(
    """
    SELECT extract(epoch FROM now() - min(published_at))
    FROM outbox_events WHERE status = 'published'
    """
)

_OLDEST_PROCESSED = text(
    """
    SELECT t.topic, extract(epoch FROM now() - (
        SELECT min(p.processed_at) FROM processed_events p WHERE p.topic = t.topic
    ))
    FROM unnest(CAST(:topics AS text[])) AS t(topic)
    """
)

_TABLE_SIZES = text(
    """
    SELECT c.relname, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
    FROM pg_class c
    WHERE c.oid = ANY(ARRAY[
        CAST('processed_events' AS regclass), CAST('outbox_events' AS regclass)
    ])
    """
)


# Where a table's first batch of a pass starts: its oldest row.
START = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Deleted:
    count: int
    #: The newest time among the deleted rows: where the next batch starts (START: none).
    last: datetime


@dataclass(frozen=True)
class TableSize:
    rows: int  # PostgreSQL's estimate
    bytes: int


async def _deleted(
    session_factory: async_sessionmaker[AsyncSession],
    statement: TextClause,
    params: dict[str, object],
    after: datetime,
) -> Deleted:
    async with session_factory() as session, session.begin():
        count, last = (await session.execute(statement, {**params, "after": after})).one()
    return Deleted(count=int(count), last=last or after)


async def delete_processed(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    topic: str,
    window: timedelta,
    limit: int,
    after: datetime = START,
) -> Deleted:
    """Delete up to ``limit`` of ``topic``'s ledger rows older than ``window``, none written
    before ``after``."""
    params: dict[str, object] = {"topic": topic, "window": window, "limit": limit}
    return await _deleted(session_factory, _DELETE_PROCESSED, params, after)


async def delete_published(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    window: timedelta,
    limit: int,
    after: datetime = START,
) -> Deleted:
    """Delete up to ``limit`` published outbox rows older than ``window``, none published
    before ``after``."""
    params: dict[str, object] = {"window": window, "limit": limit}
    return await _deleted(session_factory, _DELETE_PUBLISHED, params, after)


async def ledger_topics(session_factory: async_sessionmaker[AsyncSession]) -> list[str]:
    async with session_factory() as session:
        return list((await session.execute(_LEDGER_TOPICS)).scalars())


async def oldest_published_age(session_factory: async_sessionmaker[AsyncSession]) -> float | None:
    """Seconds since the oldest published outbox row was published (None: there is none)."""
    async with session_factory() as session:
        age = (await session.execute(_OLDEST_PUBLISHED)).scalar_one()
    return None if age is None else float(age)


async def oldest_processed_ages(
    session_factory: async_sessionmaker[AsyncSession], topics: Sequence[str]
) -> dict[str, float]:
    """Seconds since each topic's oldest ledger row was written (topics with rows only)."""
    async with session_factory() as session:
        rows = (await session.execute(_OLDEST_PROCESSED, {"topics": list(topics)})).all()
    return {topic: float(age) for topic, age in rows if age is not None}


async def table_sizes(session_factory: async_sessionmaker[AsyncSession]) -> dict[str, TableSize]:
    async with session_factory() as session:
        rows = (await session.execute(_TABLE_SIZES)).all()
    return {name: TableSize(rows=int(count), bytes=int(size)) for name, count, size in rows}
