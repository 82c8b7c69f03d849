"""The single SQLAlchemy engine, the declarative base, and the session factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

import asyncpg
from sqlalchemy import ClauseElement, DateTime, MetaData, event, exc, func
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util.concurrency import greenlet_spawn
from sqlalchemy.util.queue import AsyncAdaptedQueue

from class_management_service.settings import Settings

# Deterministic constraint names keep Alembic autogenerate diffs empty and migrations readable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


T = TypeVar("T")


class _FairQueue(Generic[T]):
    """The part of :class:`asyncio.Queue` SQLAlchemy's pool uses, first come first served.

    ``asyncio.Queue`` lets a newcomer take a returned connection before the waiter it woke up
    runs; that waiter then queues again at the end. Under load (more requests than pooled
    connections) a few requests starve: the HTTP benchmark measured p50 27 ms but p95 700 ms
    and p99 2.5 s. Here a returned connection goes straight to the longest waiter, and nobody
    takes one from the queue while others wait (items are only queued when nobody waits).
    """

    def __init__(self, maxsize: int, lifo: bool) -> None:
        self.maxsize = maxsize
        self._lifo = lifo
        self._items: deque[T] = deque()
        self._getters: deque[asyncio.Future[T]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(item)
                return
        if self.full():
            raise asyncio.QueueFull
        self._items.append(item)

    async def put(self, item: T) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop() if self._lifo else self._items.popleft()

    async def get(self) -> T:
        if self._items:
            return self.get_nowait()
        getter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._getters.append(getter)
        try:
            return await getter
        except asyncio.CancelledError:
            if getter.done() and not getter.cancelled():
                # Handed a connection just as we were cancelled (timeout): pass it on.
                self.put_nowait(getter.result())
            else:
                with contextlib.suppress(ValueError):
                    self._getters.remove(getter)
            raise


class _FairAsyncAdaptedQueue(AsyncAdaptedQueue[ConnectionPoolEntry]):
    @cached_property
    def _queue(self) -> Any:  # created lazily, on the event loop that uses it
        return _FairQueue[ConnectionPoolEntry](self.maxsize, self.use_lifo)


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio queue pool, with connections handed out in order of request."""

    _queue_class = _FairAsyncAdaptedQueue


def _discard_closed_connection(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any
) -> None:
    """Pool checkout: a connection the server closed (restart, crash, idle timeout) is
    replaced by a new one, like ``pool_pre_ping`` does, but without a round trip.

    asyncpg notices the closed socket on its own while the event loop runs, so checking
    ``is_closed()`` costs nothing; ``pool_pre_ping`` cost three round trips per checkout
    (BEGIN; a ping; ROLLBACK), half of the database work of a GET request. What it would
    also catch, a peer that vanished without closing the socket, fails the statement instead
    (and the pool then discards that connection).
    """
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise exc.DisconnectionError("connection closed by the server")


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url,
        poolclass=FairAsyncQueuePool,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connection)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit for building responses.
    return async_sessionmaker(engine, expire_on_commit=False)


# -- reads straight on asyncpg -------------------------------------------------------------------
#
# The GET routes are the service's hottest path. Through an ORM session each one cost a BEGIN,
# the statement (built, cache-keyed and compiled by SQLAlchemy per request) and a ROLLBACK:
# three round trips and ~0.5 ms of Python. Here the same Core statements are compiled once, at
# import, to asyncpg's SQL; a request runs them on a pooled connection outside any transaction
# (each statement is its own snapshot, exactly what READ COMMITTED gave them anyway): one round
# trip, on asyncpg's cached prepared statement.

_ASYNCPG = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class RawQuery:
    """A Core statement compiled once for asyncpg: SQL text with ``$n`` and the parameter names.

    Values are passed by name at execution (``query.arguments(teacher_id=...)``); parameters not
    passed keep the value the statement was built with.
    """

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]

    @classmethod
    def of(cls, statement: ClauseElement) -> RawQuery:
        compiled = statement.compile(dialect=_ASYNCPG)
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        return cls(str(compiled), names, tuple(compiled.params.get(name) for name in names))

    def arguments(self, **values: Any) -> list[Any]:
        return [
            values.get(name, default)
            for name, default in zip(self.names, self.defaults, strict=True)
        ]

    async def fetch(self, connection: asyncpg.Connection, **values: Any) -> list[asyncpg.Record]:
        return await connection.fetch(self.sql, *self.arguments(**values))

    async def fetchrow(
        self, connection: asyncpg.Connection, **values: Any
    ) -> asyncpg.Record | None:
        return await connection.fetchrow(self.sql, *self.arguments(**values))

    async def fetchval(self, connection: asyncpg.Connection, **values: Any) -> Any:
        return await connection.fetchval(self.sql, *self.arguments(**values))


class ReadOnlyDatabase:
    """Pooled asyncpg connections (from the engine's pool) for :class:`RawQuery` reads outside
    any transaction. Writes and reads of one's own uncommitted writes go through a session."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        # Straight from the pool, without an (Async)Connection around it: half the cost of
        # engine.connect() (~55 us of CPU per request), and nothing to roll back on return
        # since no transaction was ever started. (The engine's pool is looked up each time:
        # dispose() replaces it.)
        pooled = await greenlet_spawn(self._engine.pool.connect)
        try:
            driver = pooled.driver_connection
            assert isinstance(driver, asyncpg.Connection)
            yield driver
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled mid-statement: the state is unknown
                await greenlet_spawn(pooled.invalidate, exc)
            raise
        finally:
            await greenlet_spawn(pooled.close)


async def _driver(connection: AsyncConnection) -> asyncpg.Connection:
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return driver


async def session_driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection in the session's transaction, to run a :class:`RawQuery` that
    must see the transaction's own uncommitted changes."""
    return await _driver(await session.connection())
