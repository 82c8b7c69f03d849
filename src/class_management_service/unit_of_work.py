"""A unit of work: one session, one transaction, committed explicitly or rolled back."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")


class UnitOfWork:
    """``async with UnitOfWork(factory) as uow: ...; await uow.commit()``.

    Leaving the block without ``commit()`` (or with an exception) rolls everything back, so a
    change and the outbox event describing it are never half-written.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside its `async with` block")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._session_factory()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session = self.session
        try:
            await session.rollback()
        finally:
            await session.close()
            self._session = None

    async def commit(self) -> None:
        await self.session.commit()


async def lock_for_no_key_update(
    session: AsyncSession, statement: Select[T], missing: Callable[[], Exception]
) -> T:
    """The row ``statement`` selects, locked FOR NO KEY UPDATE until the transaction ends
    (updates of it queue up; foreign-key checks referencing it are not blocked); raises
    ``missing()`` when there is none."""
    found = await session.scalar(statement.with_for_update(key_share=True))
    if found is None:
        raise missing()
    return found
