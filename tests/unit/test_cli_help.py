"""Every CLI command's ``--help`` says what it does and shows an example of itself; the parser
starts without importing the commands' heavy dependencies."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from class_management_service.cli import build_parser, main
from class_management_service.cli.common import PROG


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path (``("outbox", "requeue")``, ...), groups included."""
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(build_parser())


def test_every_command_is_listed() -> None:
    assert {" ".join(path) for path in COMMANDS} >= {
        "run",
        "migrate",
        "downgrade",
        "check",
        "import-roster",
        "outbox status",
        "outbox requeue",
        "dead-letters list",
        "dead-letters show",
        "dead-letters replay",
        "dead-letters discard",
    }


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "(top)")
def test_help_says_what_the_command_does_and_shows_an_example(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    usage, description = text.split("\n\n")[:2]
    assert usage.startswith(f"usage: {PROG} {' '.join(path)}".rstrip())
    assert len(description.split()) >= 5, description
    example = text.split("example:\n", 1)[1]
    assert example.lstrip().startswith(PROG) or f" {PROG} " in example, example
    assert " ".join(path) in example


def test_the_parser_starts_without_the_commands_heavy_imports() -> None:
    probe = (
        "import sys; from class_management_service.cli import build_parser; build_parser(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'fastapi', 'aiokafka', 'uvicorn', 'pydantic', 'redis', 'rich', "
        "'alembic', 'asyncpg', 'asyncio'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
