"""The single SQLAlchemy engine, the declarative base, and the session factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, MetaData, event, exc, func, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
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


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


T = TypeVar("T")


class FairQueue(Generic[T]):
    """The part of :class:`asyncio.Queue` SQLAlchemy's pool uses, first come first served (also
    the queue of the read pool, :class:`reads.ReadOnlyDatabase`).

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
        return FairQueue[ConnectionPoolEntry](self.maxsize, self.use_lifo)


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


def asyncpg_dsn(database_url: str) -> str:
    """The service's SQLAlchemy URL (``postgresql+asyncpg://``) as asyncpg itself takes it
    (``postgresql://``), for the connections the service opens without SQLAlchemy."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def server_settings(settings: Settings) -> dict[str, str]:
    """Session settings of every connection the service opens (engine, read pool, LISTEN).

    ``synchronous_commit=on``: a commit the service acknowledges (before committing a Kafka
    offset or publishing) survives a crash of the server, whatever the server's default (the
    local servers run ``off``: kill -9 lost acknowledged commits). ``lock_timeout`` and
    ``statement_timeout`` bound every wait on another transaction's locks and every statement.
    """
    return {
        "synchronous_commit": "on",
        "lock_timeout": str(settings.database_lock_timeout_ms),
        "statement_timeout": str(settings.database_statement_timeout_ms),
    }


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, whether asyncpg's own or wrapped by SQLAlchemy."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None)
        if isinstance(code, str):
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url,
        poolclass=FairAsyncQueuePool,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        connect_args={
            "server_settings": server_settings(settings),
            "timeout": settings.database_connect_timeout_seconds,
        },
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connection)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit for building responses.
    return async_sessionmaker(engine, expire_on_commit=False)
