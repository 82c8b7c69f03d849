"""Dead letters over HTTP for the platform's admin tooling: the ``dead-letters`` CLI's commands.

Internal callers only (``X-Internal-API-Key`` + ``X-Service-ID``). Letters come from the
dead-letter topic and the ``dead_letters`` table alike (see :mod:`.dead_letter_reader`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BeforeValidator

from class_management_service.errors import ERROR_RESPONSES, DependencyUnavailable, NotFound
from class_management_service.http.deps import InternalService, ServiceContainer
from class_management_service.messaging.dead_letter_reader import (
    LETTER_ID_PATTERN,
    Letter,
    LetterFilter,
    find_letter,
    list_letters,
)
from class_management_service.messaging.dead_letter_replay import discard_letter, replay_letters
from class_management_service.messaging.dead_letter_schemas import (
    DeadLetterDetail,
    DeadLetterList,
    DeadLetterSummary,
    DiscardRequest,
    ReplayResult,
    detail,
    summary,
)
from class_management_service.messaging.dead_letter_store import LetterStatus

router = APIRouter(
    prefix="/internal/v1/dead-letters", tags=["dead letters"], responses=ERROR_RESPONSES
)

# A replay run over the letters the filters admit: a path of its own, since any name under
# /internal/v1/dead-letters/ would also be a letter id's path.
replays_router = APIRouter(tags=["dead letters"], responses=ERROR_RESPONSES)

MAX_LIMIT = 1000


class StatusFilter(enum.StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"
    ALL = "all"


LetterId = Annotated[
    str,
    Path(
        pattern=LETTER_ID_PATTERN,
        description="`kafka:<dead-letter topic>:<partition>:<offset>` or `db:<uuid>`.",
        examples=["kafka:huleedu.batch.author.matches.suggested.v1.dlq:0:42"],
    ),
]
ReasonQuery = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="`dlq_reason`, e.g. `unknown_class`.",
    ),
]
TopicQuery = Annotated[
    str | None,
    Query(
        max_length=249,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="The topic the record was consumed from.",
    ),
]
# What OpenAPI's `date-time` promises (RFC 3339, with a zone), no more: pydantic alone would
# also take a number (a Unix time) or a time without a zone.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: object) -> object:
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 date-time with a zone, e.g. 2026-11-30T12:00:00Z")
    return value


SinceQuery = Annotated[
    datetime | None,
    BeforeValidator(_rfc3339),
    Query(description="Dead-lettered at or after (RFC 3339)."),
]
UntilQuery = Annotated[
    datetime | None,
    BeforeValidator(_rfc3339),
    Query(description="Dead-lettered before (RFC 3339)."),
]
LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description="At most this many, oldest first.")
]


@asynccontextmanager
async def _broker_errors() -> AsyncIterator[None]:
    # Not at the top: aiokafka is imported when a route first reads a topic (dead_letter_reader).
    from aiokafka.errors import KafkaError

    try:
        yield
    except (KafkaError, TimeoutError) as exc:
        raise DependencyUnavailable(
            "The Kafka broker is unavailable.", {"error": type(exc).__name__}
        ) from exc


async def _letter(container: ServiceContainer, letter_id: str) -> Letter:
    async with _broker_errors():
        letter = await find_letter(container.settings, container.session_factory, letter_id)
    if letter is None:
        raise NotFound(f"Dead letter {letter_id} not found.")
    return letter


async def _replay(
    container: ServiceContainer, letters: list[Letter], *, only_open: bool
) -> ReplayResult:
    outcome = await replay_letters(
        container.session_factory, await container.producer.get(), letters, only_open=only_open
    )
    return ReplayResult(replayed=outcome.replayed, skipped=outcome.skipped)


@router.get(
    "",
    summary="List dead letters",
    description=(
        "Letters of the dead-letter topic and of the `dead_letters` table (records too large "
        "for the topic), oldest first, filtered by status (default `open`: neither replayed nor "
        "discarded), reason, original topic and time."
    ),
)
async def list_dead_letters(
    _caller: InternalService,
    container: ServiceContainer,
    status: StatusFilter = StatusFilter.OPEN,
    reason: ReasonQuery = None,
    topic: TopicQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    limit: LimitQuery = 100,
) -> DeadLetterList:
    wanted = LetterFilter(
        status=None if status is StatusFilter.ALL else LetterStatus(status.value),
        reason=reason,
        topic=topic,
        since=since,
        until=until,
        limit=limit,
    )
    async with _broker_errors():
        letters = await list_letters(container.settings, container.session_factory, wanted)
    return DeadLetterList(dead_letters=[summary(x) for x in letters], count=len(letters))


@replays_router.post(
    "/internal/v1/dead-letter-replays",
    summary="Replay the open dead letters that match",
    description=(
        "Re-publishes every open letter the filters admit (at most `limit`) to its original "
        "topic with its original key and headers plus `dlq_replay_count`, and marks it replayed. "
        "Fix the cause first (e.g. create the missing class)."
    ),
)
async def replay_dead_letters(
    _caller: InternalService,
    container: ServiceContainer,
    reason: ReasonQuery = None,
    topic: TopicQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    limit: LimitQuery = MAX_LIMIT,
) -> ReplayResult:
    wanted = LetterFilter(reason=reason, topic=topic, since=since, until=until, limit=limit)
    async with _broker_errors():
        letters = await list_letters(container.settings, container.session_factory, wanted)
        return await _replay(container, letters, only_open=True)


@router.get(
    "/{letter_id}",
    summary="One dead letter with its value and headers",
    description=(
        "The letter with the original record's own headers and its value (text when it is "
        "UTF-8, else base64). 404 for an unknown letter or a topic that is no dead-letter topic."
    ),
)
async def get_dead_letter(
    letter_id: LetterId, _caller: InternalService, container: ServiceContainer
) -> DeadLetterDetail:
    return detail(await _letter(container, letter_id))


@router.post(
    "/{letter_id}/replay",
    summary="Replay one dead letter",
    description=(
        "Re-publishes the letter whatever its status (a replayed one again: the consumer "
        "stores an event once, so a second replay stores nothing new)."
    ),
)
async def replay_dead_letter(
    letter_id: LetterId, _caller: InternalService, container: ServiceContainer
) -> ReplayResult:
    letter = await _letter(container, letter_id)
    async with _broker_errors():
        return await _replay(container, [letter], only_open=False)


@router.post(
    "/{letter_id}/discard",
    summary="Discard one dead letter",
    description="Marks the letter as dealt with, without replaying it; `list` no longer shows it.",
)
async def discard_dead_letter(
    letter_id: LetterId,
    _caller: InternalService,
    container: ServiceContainer,
    body: DiscardRequest | None = None,
) -> DeadLetterSummary:
    await _letter(container, letter_id)
    await discard_letter(container.session_factory, letter_id, body.note if body else None)
    return summary(await _letter(container, letter_id))
