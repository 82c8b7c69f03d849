"""Limit/offset pages with a total count, allow-listed sorting and substring filters, shared by
every list route.

A page is one statement (:func:`page_query`), compiled once per filter combination and run
straight on asyncpg: PostgreSQL renders the items as JSON (:func:`reads.json_rows`) and counts
the total only when the page itself does not prove it (first page, not full); :func:`fetch_page`
puts them in the platform's list envelope, ``{"<items>": [...], "pagination": {...}}``
(:class:`Pagination`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import (
    Integer,
    Select,
    SQLColumnExpression,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    select,
)

from class_management_service.reads import RawQuery, json_rows

# The platform's own service pages by 20 when no limit is given.
DEFAULT_LIMIT = 20
MAX_LIMIT = 200
# Far beyond any real roster, and keeps OFFSET well inside PostgreSQL's bigint.
MAX_OFFSET = 1_000_000


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


class Pagination(BaseModel):
    """Where a page lies in the list (every list response carries it as ``pagination``)."""

    limit: int = Field(ge=1, le=MAX_LIMIT)
    offset: int = Field(ge=0)
    returned: int = Field(ge=0, le=MAX_LIMIT, description="Items on this page.")
    total: int = Field(ge=0, description="Items matching the filters, on all pages.")


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


def page_query(statement: Select[Any], ordering: Sequence[SQLColumnExpression[Any]]) -> RawQuery:
    """A list statement as one compiled query for :func:`fetch_page`: a single row holding the
    requested page's items as JSON (``limit``/``offset`` parameters), how many they are and the
    total the filters match.

    The total is counted only when the page does not prove it (a first page that is not full);
    ``CASE`` runs the count's sub-plan only in that branch. One statement, one round trip.
    """
    limit, offset = bindparam("limit", type_=Integer), bindparam("offset", type_=Integer)
    page = json_rows(statement.order_by(*ordering).limit(limit).offset(offset)).cte("page")
    (item,) = page.c
    # string_agg keeps the order the sorted sub-select produced its rows in.
    items = select(func.string_agg(item, literal_column("','"))).scalar_subquery()
    on_page = select(func.count()).select_from(page).scalar_subquery()
    proven = and_(offset == 0, on_page < limit)
    everything = (
        statement.with_only_columns(func.count(), maintain_column_froms=True)
        .order_by(None)
        .scalar_subquery()
    )
    return RawQuery.of(
        select(
            func.coalesce(items, literal_column("''")).label("items"),
            on_page.label("returned"),
            case((proven, on_page), else_=everything).label("total"),
        )
    )


async def fetch_page(
    connection: asyncpg.Connection,
    query: RawQuery,
    page: PageRequest,
    items_key: str,
    **values: Any,
) -> str:
    """A page as JSON, its items under ``items_key`` (``classes``, ``students``) and a
    :class:`Pagination`: ``query`` comes from :func:`page_query`, ``values`` fill its filters'
    parameters."""
    row = await query.fetchrow(connection, limit=page.limit, offset=page.offset, **values)
    assert row is not None  # aggregates: always one row
    items, returned, total = row
    pagination = (
        f'{{"limit":{page.limit},"offset":{page.offset},"returned":{returned},"total":{total}}}'
    )
    return f'{{"{items_key}":[{items}],"pagination":{pagination}}}'
