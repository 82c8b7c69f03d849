"""Limit/offset pages with a total count, allow-listed sorting and substring filters, shared by
every list route.

A page costs at most two statements (the page, then the count), and only one when the page
itself proves the total (first page, not full).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Row, Select, SQLColumnExpression, func
from sqlalchemy.ext.asyncio import AsyncSession

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Far beyond any real roster, and keeps OFFSET well inside PostgreSQL's bigint.
MAX_OFFSET = 1_000_000

ItemT = TypeVar("ItemT")


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    offset: int


def _page_request(
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


async def fetch_page(
    session: AsyncSession,
    statement: Select[Any],
    page: PageRequest,
    ordering: Sequence[SQLColumnExpression[Any]],
) -> tuple[Sequence[Row[Any]], int]:
    """The requested rows of ``statement`` (already filtered) and the total it matches."""
    rows = (
        await session.execute(statement.order_by(*ordering).limit(page.limit).offset(page.offset))
    ).all()
    if page.offset == 0 and len(rows) < page.limit:
        return rows, len(rows)
    count = statement.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    total = (await session.execute(count)).scalar_one()
    return rows, int(total)
