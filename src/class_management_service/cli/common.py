"""What every command shares: help with an example, settings, async execution, errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from class_management_service.settings import Settings

PROG = "class-management-service"


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps the description as usual, keeps the example (the epilog) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def with_example(example: str) -> dict[str, Any]:
    """Parser options that show ``example`` under the help."""
    return {"epilog": f"example:\n  {example}", "formatter_class": _HelpFormatter}


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    summary: str,
    description: str,
    example: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """A command whose ``--help`` says what it does and shows ``example``."""
    parser = commands.add_parser(
        name, help=summary, description=description, **with_example(example)
    )
    parser.set_defaults(handler=handler)
    return parser


def load_settings() -> Settings:
    from class_management_service.settings import Settings

    return Settings()


def fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def run_job(job: Callable[[Settings], Coroutine[Any, Any, int]]) -> int:
    """Run an operator's job to its exit code; a failure it raises is one readable line."""
    import asyncio

    from class_management_service.errors import ServiceError, describe

    try:
        return asyncio.run(job(load_settings()))
    except ServiceError as exc:
        return fail(exc.message)
    except Exception as exc:  # an operator reads one line (bad settings too), not a traceback
        return fail(describe(exc, 500))


@asynccontextmanager
async def database_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on an engine of the job's own, disposed when the block ends."""
    from class_management_service import db

    engine = db.create_engine(settings)
    try:
        yield db.create_session_factory(engine)
    finally:
        await engine.dispose()
