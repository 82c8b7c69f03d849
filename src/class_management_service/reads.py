"""Reads straight on asyncpg: the GET routes' statements, their connections, and JSON rendered
by PostgreSQL.

The GET routes are the service's hottest path. Through an ORM session each one cost a BEGIN, the
statement (built, cache-keyed and compiled by SQLAlchemy per request) and a ROLLBACK: three round
trips and ~0.5 ms of Python. Here the same Core statements are compiled once, on first use, to
asyncpg's SQL (:class:`RawQuery`); a request runs them on a connection of the read pool
(:class:`ReadOnlyDatabase`) outside any transaction (each statement is its own snapshot, exactly
what READ COMMITTED gave them anyway): one round trip, on asyncpg's cached prepared statement.

The responses themselves are rendered by PostgreSQL (:func:`json_rows`): one JSON text per row,
which the route sends as it is. Decoding a row into Python objects (UUIDs, datetimes) and
serializing them again through a pydantic model cost more CPU than the query; PostgreSQL runs on
another core. The pydantic response models stay the documented schema (``response_model``), and
the tests check every rendered representation against them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy.exc
from pydantic import BaseModel
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    DateTime,
    FromClause,
    Select,
    SQLColumnExpression,
    Text,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler

from class_management_service.db import FairQueue, asyncpg_dsn, server_settings
from class_management_service.settings import Settings

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

    async def fetchrow(
        self, connection: asyncpg.Connection, **values: Any
    ) -> asyncpg.Record | None:
        return await connection.fetchrow(self.sql, *self.arguments(**values))

    async def fetchval(self, connection: asyncpg.Connection, **values: Any) -> Any:
        return await connection.fetchval(self.sql, *self.arguments(**values))


def json_rows(statement: Select[Any]) -> Select[Any]:
    """``statement`` with each row rendered by PostgreSQL as one compact JSON object (text),
    keyed by the statement's column labels, in the statement's order."""
    rows = statement.subquery("r")
    # ::text: the session's connections decode json into dicts (SQLAlchemy's codec).
    return select(cast(func.row_to_json(rows.table_valued()), Text)).select_from(rows)


def response_columns(
    model: type[BaseModel],
    table: FromClause,
    computed: Mapping[str, Callable[[], ColumnElement[Any]]] = {},
) -> list[ColumnElement[Any]]:
    """The select list :func:`json_rows` renders as ``model``: its fields in order, each the
    ``table`` column of the same name (a ``timestamptz`` in :func:`iso_timestamp` form) unless
    ``computed`` builds it. A field neither gives is a KeyError when the statement is built."""
    return [
        (computed[name]() if name in computed else _json_form(table.c[name])).label(name)
        for name in model.model_fields
    ]


def _json_form(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return iso_timestamp(column) if isinstance(column.type, DateTime) else column


def iso_timestamp(column: SQLColumnExpression[datetime]) -> ColumnElement[Any]:
    """A ``timestamptz`` as text: ISO 8601 in UTC with microseconds, ``2026-11-25T02:39:09.454697Z``
    (the form pydantic gives, except that it leaves out a zero fraction)."""
    utc = func.timezone(literal_column("'UTC'"), column)
    return func.to_char(utc, literal_column("""'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""))


@dataclass(eq=False, slots=True)
class _Slot:
    """A place in the read pool; its connection is opened on first use and reopened after the
    server closed it."""

    connection: asyncpg.Connection | None = None


class ReadOnlyDatabase:
    """A small pool of asyncpg connections of its own for :class:`RawQuery` reads outside any
    transaction. Writes, and reads of one's own uncommitted writes, go through a session.

    Not SQLAlchemy's pool: a checkout through it (greenlet hand-offs, pool events) cost ~70 us of
    CPU per GET in the app, a third of the request; ``asyncpg.Pool`` ~45 us (its connection proxy
    and release bookkeeping). Here a checkout is a queue operation. The pool holds ``size``
    slots, handed out first come first served (:class:`FairQueue`); a slot whose connection is
    missing or was closed by the server (restart, crash, terminated backend) connects anew, so a
    request never gets a dead connection that asyncpg already knows is dead.
    """

    def __init__(self, settings: Settings) -> None:
        self._dsn = asyncpg_dsn(settings.database_url)
        self._server_settings = server_settings(settings)
        # How long a request waits for a free slot, like the engine's pool_timeout; then
        # sqlalchemy's pool TimeoutError, answered 503.
        self._wait_seconds = settings.database_pool_timeout_seconds
        self._connect_timeout = settings.database_connect_timeout_seconds
        self._all = [_Slot() for _ in range(settings.database_read_pool_size)]
        self._idle: FairQueue[_Slot] | None = None  # created on the loop that uses it

    def _queue(self) -> FairQueue[_Slot]:
        if self._idle is None:
            self._idle = FairQueue[_Slot](maxsize=0, lifo=False)
            for slot in self._all:
                self._idle.put_nowait(slot)
        return self._idle

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        queue = self._queue()
        if not queue.empty():
            slot = await queue.get()  # no wait: the hot path
        else:
            try:
                async with asyncio.timeout(self._wait_seconds):
                    slot = await queue.get()
            except TimeoutError:
                raise sqlalchemy.exc.TimeoutError(
                    f"no read connection free within {self._wait_seconds:g} s"
                ) from None
        try:
            if slot.connection is None or slot.connection.is_closed():
                slot.connection = await asyncpg.connect(
                    self._dsn,
                    server_settings=self._server_settings,
                    timeout=self._connect_timeout,
                )
            try:
                yield slot.connection
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # Cancelled mid-statement: the connection's state is unknown, drop it.
                    slot.connection.terminate()
                    slot.connection = None
                raise
        finally:
            queue.put_nowait(slot)

    async def close(self) -> None:
        for slot in self._all:
            connection, slot.connection = slot.connection, None
            if connection is not None and not connection.is_closed():
                try:
                    await asyncio.wait_for(connection.close(), timeout=5)
                except (OSError, asyncpg.PostgresError, TimeoutError):
                    connection.terminate()


async def fetch_rendered(
    db: ReadOnlyDatabase, query: RawQuery, missing: Callable[[], Exception], **values: Any
) -> str:
    """The one JSON text ``query`` renders for ``values``; raises ``missing()`` when no row."""
    async with db.connection() as connection:
        rendered: str | None = await query.fetchval(connection, **values)
    if rendered is None:
        raise missing()
    return rendered


async def session_driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection in the session's transaction, to run a :class:`RawQuery` that
    must see the transaction's own uncommitted changes."""
    raw = await (await session.connection()).get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return driver
