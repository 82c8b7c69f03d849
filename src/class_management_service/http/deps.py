"""The routes' typed dependencies, all from the app's one :class:`Container`: the unit of work,
the clock, and who is calling (a teacher via the gateway, or an internal service); and the read
pool, which routes get from the request (:func:`read_db`).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from pydantic import AfterValidator

from class_management_service.clock import Clock
from class_management_service.container import Container
from class_management_service.errors import Unauthorized
from class_management_service.reads import ReadOnlyDatabase
from class_management_service.settings import ROSTER_UNAUTHENTICATED_ACCESS
from class_management_service.unit_of_work import UnitOfWork


def _container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


# Dependencies are `async def` although most never await: FastAPI runs a plain `def`
# dependency in the thread pool, a thread hand-off per request that cost ~30 % of GET throughput.
# Each takes the request itself rather than depending on ServiceContainer: a nested dependency
# is one more resolution step on every request of the hot paths.
async def _container(request: Request) -> Container:
    return _container_of(request)


ServiceContainer = Annotated[Container, Depends(_container)]


async def _unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    async with UnitOfWork(_container_of(request).session_factory) as uow:
        yield uow


Uow = Annotated[UnitOfWork, Depends(_unit_of_work)]


def read_db(request: Request) -> ReadOnlyDatabase:
    """The read pool (compiled statements on asyncpg, no transaction: see reads.py). Routes take
    the request and call this instead of declaring a dependency: a dependency is one more round
    of FastAPI's dependency solving, ~8 us per request (4 % of a GET), and the request adds
    nothing to the OpenAPI document."""
    return _container_of(request).read_only_database


async def _clock(request: Request) -> Clock:
    return _container_of(request).clock


ServiceClock = Annotated[Clock, Depends(_clock)]

# Declared required in OpenAPI where a route needs them; a missing one is answered 401, not 422
# (http/errors.py: a missing required header is always a missing identity). A value with no visible
# character counts as none.
_VISIBLE = {"pattern": r"\S"}


def _teacher_id(x_user_id: str) -> str:
    if not x_user_id.strip():
        raise Unauthorized("The X-User-ID header is required.")
    return x_user_id.strip()


# A header parameter of the route itself, checked by a validator, rather than a dependency that
# reads it: each dependency is one more round of FastAPI's dependency solving (~6 us a request).
# Unauthorized is not a ValueError, so pydantic lets it through to the error handlers (401).
TeacherId = Annotated[
    str,
    Header(
        alias="x-user-id",
        description="The authenticated teacher, set by the API gateway (401 without).",
        max_length=255,
        json_schema_extra=_VISIBLE,
    ),
    AfterValidator(_teacher_id),
]


_KeyHeader = Annotated[
    str | None, Header(description="Shared secret of internal platform callers.")
]
_ServiceIdHeader = Annotated[
    str | None, Header(description="Name of the calling service.", max_length=255)
]


def _key_matches(container: Container, presented: str) -> bool:
    """Whether ``presented`` is the configured internal key; never when none is configured
    (an empty presented key cannot equal the non-empty configured one)."""
    expected = container.internal_api_key
    if not expected:
        return False  # no key configured: internal routes fail closed
    # Constant-time comparison: response timing must not reveal how much of the key matched.
    return hmac.compare_digest(presented.encode(), expected)


def _internal_caller(container: Container, key: str | None, service_id: str | None) -> str:
    if (
        key is None
        or service_id is None
        or not service_id.strip()
        or not _key_matches(container, key)
    ):
        # Never echo or log the presented key.
        raise Unauthorized("Valid X-Internal-API-Key and X-Service-ID headers are required.")
    return service_id


async def _internal_service(
    request: Request,
    x_internal_api_key: Annotated[
        str, Header(description="Shared secret of internal platform callers (401 if wrong).")
    ],
    x_service_id: Annotated[
        str,
        Header(
            description="Name of the calling service.", max_length=255, json_schema_extra=_VISIBLE
        ),
    ],
) -> str:
    return _internal_caller(_container_of(request), x_internal_api_key, x_service_id)


InternalService = Annotated[str, Depends(_internal_service)]


@dataclass(frozen=True, slots=True)
class RosterReader:
    """Who reads a class roster: ``teacher_id`` set means only that teacher's own classes."""

    teacher_id: str | None


async def _roster_reader(
    request: Request,
    x_internal_api_key: _KeyHeader = None,
    x_service_id: _ServiceIdHeader = None,
    x_user_id: Annotated[
        str | None,
        Header(
            description="A teacher (via the gateway): only their own classes' rosters.",
            max_length=255,
        ),
    ] = None,
) -> RosterReader:
    """An internal service (key + service id), a teacher, or (only where the operator allowed
    it) a caller with neither: the platform's NLP client sends no credentials at all.

    Credentials that are presented must be valid: a wrong key or an empty X-User-ID is a 401
    even where anonymous reads are allowed, so presenting something never grants more than
    presenting nothing, and a misconfigured caller finds out.
    """
    container = _container_of(request)
    if x_internal_api_key is not None:
        _internal_caller(container, x_internal_api_key, x_service_id)
        return RosterReader(teacher_id=None)
    if x_user_id is not None:
        return RosterReader(teacher_id=_teacher_id(x_user_id))
    if container.settings.roster_unauthenticated_access:
        return RosterReader(teacher_id=None)
    raise Unauthorized(
        "Send X-Internal-API-Key and X-Service-ID, or X-User-ID of the class's teacher. "
        "Callers without credentials (the platform's NLP service) need "
        f"{ROSTER_UNAUTHENTICATED_ACCESS}=true, on a private network only.",
        {"setting": ROSTER_UNAUTHENTICATED_ACCESS},
    )


RosterAccess = Annotated[RosterReader, Depends(_roster_reader)]
