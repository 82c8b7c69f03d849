"""Pages of every list route: keyset (``cursor``) or limit/offset, with allow-listed sorting and
substring filters.

A page is one statement, compiled once per filter combination (:func:`page_query`) and run
straight on asyncpg: PostgreSQL renders the items as JSON (:func:`reads.json_rows`), says whether
more follow (it reads ``limit + 1`` rows) and renders the last item's sort key, from which
:func:`fetch_page` makes the opaque ``next`` cursor (:mod:`.cursor`) and the RFC 8288
``Link: <...>; rel="next"`` header. A cursor page starts right after that key
(``(key, id) > (:after...)``, on an index per sort), so the 1,000th page costs what the first
does; an offset page reads and discards every row before it, and stays for the platform's
clients, which page by offset.

``pagination.total``: an offset page counts (unless the page proves it: the last page), as the
platform's clients have always seen it. A cursor page does not count again: it reports the
total its walk began with (carried in the cursor), raised to what the walk itself has seen, and
exact on the last page; counting 50,000 rows on every page would cost more than the page.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import asyncpg
from fastapi import Depends, Query, Request
from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    FromClause,
    Integer,
    Select,
    Text,
    Uuid,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    true,
    tuple_,
)
from starlette.datastructures import URL

from class_management_service.errors import MalformedRequest
from class_management_service.http import cursor as cursors
from class_management_service.http.cursor import KeyKind
from class_management_service.http.json_text import JsonText
from class_management_service.http.page_schemas import MAX_LIMIT
from class_management_service.reads import RawQuery

# The platform's own service pages by 20 when no limit is given.
DEFAULT_LIMIT = 20
# Far beyond any real roster, and keeps OFFSET well inside PostgreSQL's bigint.
MAX_OFFSET = 1_000_000
MAX_CURSOR_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    offset: int
    cursor: str | None
    url: URL  # the request's: the next page's link is this one with the cursor instead


async def _page_request(  # async: a plain `def` dependency would run in the thread pool
    request: Request,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Page size (at most {MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Number of items to skip.")] = 0,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description=(
                "Start after the item a previous page's `next` names (keyset pagination: "
                "any page costs what the first does). Not together with `offset`; only with "
                "the sort and filters of the page that issued it."
            ),
        ),
    ] = None,
) -> PageRequest:
    if cursor is not None and offset:
        raise MalformedRequest("Give either cursor or offset, not both.", {"offset": offset})
    return PageRequest(limit=limit, offset=offset, cursor=cursor, url=request.url)


PageQuery = Annotated[PageRequest, Depends(_page_request)]


LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "Link": {
                "description": 'RFC 8288 `<next page URL>; rel="next"`, absent on the last page.',
                "schema": {"type": "string"},
            }
        }
    }
}

# A sort key from a row's columns (a table's, or a rendered page's, which carry the same names),
# never NULL; the id follows it as the tiebreaker.
KeyParts = Callable[[Any], list[ColumnElement[Any]]]


def sort_key(sort: enum.StrEnum, keys: Mapping[str, KeyParts]) -> tuple[KeyParts, bool]:
    """``name`` sorts ascending, ``-name`` descending (the id then descending too, so one index
    read backwards serves it)."""
    return keys[sort.value.removeprefix("-")], sort.value.startswith("-")


def contains(text: str) -> str:
    """An ILIKE pattern matching ``text`` anywhere, with the user's ``%``/``_`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The two compiled statements of one list: from an offset, and after a cursor."""

    scope: str
    from_offset: RawQuery
    after_cursor: RawQuery
    key_kinds: tuple[KeyKind, ...]


def _kind(part: ColumnElement[Any]) -> KeyKind:
    for sql_type, kind in (
        (DateTime, KeyKind.TIMESTAMP),
        (Uuid, KeyKind.UUID),
        (Boolean, KeyKind.BOOLEAN),
    ):
        if isinstance(part.type, sql_type):
            return kind
    return KeyKind.TEXT


def page_query(
    scope: str,
    statement: Select[Any],
    table: FromClause,
    sort: tuple[KeyParts, bool],
    *,
    found: ColumnElement[bool] | None = None,
) -> ListQuery:
    """``statement`` (rows shaped like the response items, filtered, with ``table``'s id) as
    :class:`ListQuery`. Each statement answers one row: the page's items as JSON, how many,
    whether more follow, the last item's key (JSON), from an offset the total, and ``found``:
    whether the list exists at all (e.g. the teacher's class it belongs to), checked in the same
    round trip."""
    parts, descending = sort
    keys = [*parts(table.c), table.c.id]
    kinds = tuple(_kind(key) for key in keys)
    ordering = [key.desc() if descending else key.asc() for key in keys]
    after = [
        cast(bindparam(f"after_{index}", type_=Text), key.type)
        if kind is not KeyKind.TEXT
        else bindparam(f"after_{index}", type_=Text)
        for index, (key, kind) in enumerate(zip(keys, kinds, strict=True))
    ]
    beyond = tuple_(*keys) < tuple_(*after) if descending else tuple_(*keys) > tuple_(*after)

    def compiled(statement: Select[Any], *, count: bool) -> RawQuery:
        limit, offset = bindparam("limit", type_=Integer), bindparam("offset", type_=Integer)
        rows = statement.order_by(*ordering).limit(limit + 1).offset(offset).subquery("r")
        page = select(
            cast(func.row_to_json(rows.table_valued()), Text).label("item"),
            cast(func.json_build_array(*parts(rows.c), rows.c.id), Text).label("key"),
            func.row_number().over().label("n"),
        ).subquery("page")
        fetched, on_page = func.count(), page.c.n <= limit
        everything = (
            statement.with_only_columns(func.count(), maintain_column_froms=True)
            .order_by(None)
            .scalar_subquery()
        )
        # The count runs only when the page does not prove the total (CASE: its sub-plan is
        # evaluated in that branch alone).
        proven = (fetched <= limit) & ((offset == 0) | (fetched > 0))
        total = case((proven, offset + fetched), else_=everything) if count else None
        return RawQuery.of(
            select(
                # string_agg keeps the order the sorted sub-select produced its rows in.
                func.coalesce(
                    func.string_agg(page.c.item, literal_column("','")).filter(on_page),
                    literal_column("''"),
                ).label("items"),
                func.count().filter(on_page).label("returned"),
                (fetched > limit).label("more"),
                func.max(page.c.key).filter(page.c.n == limit).label("last_key"),
                (total if total is not None else literal_column("NULL")).label("total"),
                (found if found is not None else true()).label("found"),
            ).select_from(page)
        )

    return ListQuery(
        scope=scope,
        from_offset=compiled(statement, count=True),
        after_cursor=compiled(statement.where(beyond), count=False),
        key_kinds=kinds,
    )


def next_link(url: URL, token: str) -> str:
    """``Link`` to the page after ``url``'s: the same path and query, ``offset`` dropped and
    ``cursor`` (last) set to ``token``, as Starlette's ``remove_query_params`` and
    ``include_query_params`` give, in one parse and one encode instead of two of each and two
    URL rebuilds (~26 -> ~8 us of a list request's CPU)."""
    kept = [
        (name, value)
        for name, value in parse_qsl(url.query, keep_blank_values=True)
        if name != "offset" and name != "cursor"
    ]
    kept.append(("cursor", token))
    return f'<{url.path}?{urlencode(kept)}>; rel="next"'


async def fetch_page(
    connection: asyncpg.Connection,
    query: ListQuery,
    page: PageRequest,
    items_key: str,
    missing: Callable[[], Exception] | None = None,
    **values: Any,
) -> JsonText:
    """A page as JSON, its items under ``items_key`` (``classes``, ``students``) beside a
    :class:`Pagination` and ``next``; ``values`` fill the filters' parameters (they and
    ``query.scope`` are what a cursor is bound to). Raises ``missing()`` when the query's
    ``found`` is false."""
    bound = cursors.binding(query.scope, values)
    if page.cursor is None:
        row = await query.from_offset.fetchrow(
            connection, limit=page.limit, offset=page.offset, **values
        )
        position, carried = page.offset, 0
    else:
        after = cursors.decode(page.cursor, bound, query.key_kinds)
        row = await query.after_cursor.fetchrow(
            connection, limit=page.limit, offset=0, **values, **after.parameters()
        )
        position, carried = after.position, after.total
    assert row is not None  # aggregates: always one row
    items, returned, more, last_key, total, found = row
    if not found and missing is not None:
        raise missing()
    if total is None:  # a cursor page: the walk's count, and what the walk has seen
        total = max(carried, position + returned + 1) if more else position + returned
    pagination = (
        f'{{"limit":{page.limit},"offset":{position},"returned":{returned},"total":{total}}}'
    )
    headers: dict[str, str] = {}
    next_cursor = "null"
    if more:
        token = cursors.encode(
            cursors.Cursor(tuple(json.loads(last_key)), position + returned, total, bound)
        )
        next_cursor = f'"{token}"'
        headers["Link"] = next_link(page.url, token)
    return JsonText(
        f'{{"{items_key}":[{items}],"pagination":{pagination},"next":{next_cursor}}}',
        headers=headers,
    )
