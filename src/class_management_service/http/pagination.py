"""Limit/offset pages with a total count, allow-listed sorting and substring filters, shared by
every list route.

A page costs at most two statements (the page, then the count), and only one when the page
itself proves the total (first page, not full). List statements are compiled once per filter
combination (:class:`PageQueries`) and run straight on asyncpg; PostgreSQL renders the items as
JSON (:func:`reads.json_rows`) and :func:`page_json` puts them in a :class:`Page`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import asyncpg
from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Integer, Select, SQLColumnExpression, bindparam, func

from class_management_service.reads import RawQuery, json_rows

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Far beyond any real roster, and keeps OFFSET well inside PostgreSQL's bigint.
MAX_OFFSET = 1_000_000

ItemT = TypeVar("ItemT")


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    offset: int


async def _page_request(  # async: a plain `def` dependency would run in the thread pool
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Page size (at most {MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Number of items to skip.")] = 0,
) -> PageRequest:
    return PageRequest(limit=limit, offset=offset)


PageQuery = Annotated[PageRequest, Depends(_page_request)]


class Page(BaseModel, Generic[ItemT]):
    """One page of a list, with the total number of matching items."""

    items: list[ItemT]
    total: int = Field(ge=0, description="Number of items matching the filters, on all pages.")
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)


def order_by(
    sort: enum.StrEnum,
    sortable: Mapping[str, SQLColumnExpression[Any]],
    tiebreaker: SQLColumnExpression[Any],
) -> list[SQLColumnExpression[Any]]:
    """``name`` sorts ascending, ``-name`` descending; the tiebreaker keeps pages stable."""
    descending = sort.value.startswith("-")
    column = sortable[sort.value.removeprefix("-")]
    return [column.desc() if descending else column.asc(), tiebreaker.asc()]


def contains(text: str) -> str:
    """An ILIKE pattern matching ``text`` anywhere, with the user's ``%``/``_`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class PageQueries:
    """A list statement compiled once for asyncpg: the page (``limit``/``offset`` parameters),
    each row as JSON text, and the count of every matching row."""

    rows: RawQuery
    count: RawQuery

    @classmethod
    def of(
        cls, statement: Select[Any], ordering: Sequence[SQLColumnExpression[Any]]
    ) -> PageQueries:
        page = (
            statement.order_by(*ordering)
            .limit(bindparam("limit", type_=Integer))
            .offset(bindparam("offset", type_=Integer))
        )
        count = statement.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
        return cls(rows=RawQuery.of(json_rows(page)), count=RawQuery.of(count))


async def fetch_page(
    connection: asyncpg.Connection, queries: PageQueries, page: PageRequest, **values: Any
) -> tuple[list[str], int]:
    """The requested rows as JSON (``values`` fill the filters' parameters) and the total they
    match."""
    rows = await queries.rows.fetch(connection, limit=page.limit, offset=page.offset, **values)
    items: list[str] = [row[0] for row in rows]
    if page.offset == 0 and len(items) < page.limit:
        return items, len(items)
    total = await queries.count.fetchval(connection, **values)
    return items, int(total)


def page_json(items: Sequence[str], total: int, page: PageRequest) -> str:
    """A :class:`Page` as JSON, around items already rendered as JSON."""
    return (
        f'{{"items":[{",".join(items)}],"total":{total},'
        f'"limit":{page.limit},"offset":{page.offset}}}'
    )
