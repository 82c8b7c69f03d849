"""``dead-letters list|show|replay|discard``: poison records of the dead-letter topic and of the
``dead_letters`` table (records too large for the topic), one id for each (see
``messaging/dead_letter_reader.py``)."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from class_management_service.cli.common import (
    PROG,
    add_command,
    database_sessions,
    fail,
    run_job,
    with_example,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from class_management_service.messaging.dead_letter_reader import Letter, LetterFilter
    from class_management_service.settings import Settings

_AGO = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_LETTER_ID_HELP = "a letter's id as `list` shows it (kafka:TOPIC:PARTITION:OFFSET or db:UUID)"


def moment(text: str) -> datetime:
    """An ISO-8601 time (UTC unless it says otherwise) or an age (``90s``, ``15m``, ``2h``)."""
    ago = _AGO.match(text)
    if ago:
        return datetime.now(UTC) - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time or an age: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help="dlq_reason, e.g. unknown_class, schema_invalid")
    parser.add_argument("--topic", help="the topic the record was consumed from")
    parser.add_argument("--since", type=moment, help="dead-lettered at or after (ISO time or 2h)")
    parser.add_argument("--until", type=moment, help="dead-lettered before (ISO time or 30m)")
    parser.add_argument("--limit", type=int, help="at most this many, oldest first")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "dead-letters",
        help="poison messages set aside by the consumer: list, show, replay, discard",
        description=(
            "Messages the consumer could not process (unknown class, invalid JSON, ...), from "
            "the dead-letter topic and the dead_letters table alike. Fix the cause, replay."
        ),
        **with_example(f"{PROG} dead-letters list"),
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = add_command(
        actions,
        "list",
        summary="dead letters still open (or by --status), oldest first",
        description=(
            "One line per dead letter: id, status, replays, reason, original topic, time, "
            "key, error. Only open letters (neither replayed nor discarded) unless --status."
        ),
        example=f"{PROG} dead-letters list --reason unknown_class --since 2h",
        handler=_list,
    )
    listing.add_argument(
        "--status",
        choices=["open", "replayed", "discarded", "all"],
        default="open",
        help="which letters (default: open)",
    )
    _filters(listing)
    listing.add_argument("--json", action="store_true", help="one JSON document")
    show = add_command(
        actions,
        "show",
        summary="one dead letter with its value and headers (JSON)",
        description="The letter as JSON: why it failed, where from, its headers and value.",
        example=f"{PROG} dead-letters show kafka:huleedu.batch.author.matches.suggested.v1.dlq:0:7",
        handler=_show,
    )
    show.add_argument("letter_id", metavar="ID", help=_LETTER_ID_HELP)
    replay = add_command(
        actions,
        "replay",
        summary="re-publish letters to their original topic",
        description=(
            "Re-publish the named letters, or every open letter the filters admit (--all: "
            "every open letter), to the topic they came from with their original key and "
            "headers plus dlq_replay_count, and mark them replayed. Fix the cause first (e.g. "
            "create the missing class); the consumer stores an event once, so replaying again "
            "stores nothing new. Progress goes to stderr."
        ),
        example=f"{PROG} dead-letters replay --reason unknown_class",
        handler=_replay,
    )
    replay.add_argument("letter_ids", nargs="*", metavar="ID", help=_LETTER_ID_HELP)
    _filters(replay)
    replay.add_argument("--all", action="store_true", help="every open letter")
    discard = add_command(
        actions,
        "discard",
        summary="mark letters as dealt with, without replaying them",
        description="Close the named letters: `list` no longer shows them (--status discarded).",
        example=f"{PROG} dead-letters discard db:5d3c9a61-0e0b-4a47-8f0e-9a6c1b2e7f40 "
        "--note 'test data'",
        handler=_discard,
    )
    discard.add_argument("letter_ids", nargs="+", metavar="ID", help=_LETTER_ID_HELP)
    discard.add_argument("--note", help="why, for whoever reads the letter next")


def _wanted(args: argparse.Namespace, status: str = "open") -> LetterFilter:
    from class_management_service.messaging.dead_letter_reader import LetterFilter
    from class_management_service.messaging.dead_letter_store import LetterStatus

    return LetterFilter(
        status=None if status == "all" else LetterStatus(status),
        reason=args.reason,
        topic=args.topic,
        since=args.since,
        until=args.until,
        limit=args.limit,
    )


def _line(letter: Letter) -> str:
    key = (letter.key or b"").decode(errors="backslashreplace")
    error = " ".join(letter.error.split())[:120]
    return (
        f"{letter.id}  {letter.status.value}  replays={letter.replay_count}  {letter.reason}  "
        f"{letter.original_topic}  {letter.failed_at.isoformat(timespec='seconds')}  "
        f"key={key}  {error}"
    )


def _list(args: argparse.Namespace) -> int:
    async def job(settings: Settings) -> int:
        from class_management_service.messaging.dead_letter_reader import list_letters
        from class_management_service.messaging.dead_letter_schemas import (
            DeadLetterList,
            summary,
        )

        async with database_sessions(settings) as session_factory:
            letters = await list_letters(settings, session_factory, _wanted(args, args.status))
        if args.json:
            shown = DeadLetterList(dead_letters=[summary(x) for x in letters], count=len(letters))
            print(shown.model_dump_json(indent=2))
        else:
            for letter in letters:
                print(_line(letter))
            print(f"{len(letters)} {args.status} dead letter(s)")
        return 0

    return run_job(job)


def _show(args: argparse.Namespace) -> int:
    async def job(settings: Settings) -> int:
        from class_management_service.messaging.dead_letter_reader import find_letter
        from class_management_service.messaging.dead_letter_schemas import detail

        async with database_sessions(settings) as session_factory:
            letter = await find_letter(settings, session_factory, args.letter_id)
        if letter is None:
            return fail(f"no dead letter {args.letter_id}")
        print(detail(letter).model_dump_json(indent=2))
        return 0

    return run_job(job)


def _replay(args: argparse.Namespace) -> int:
    filtered = any(
        getattr(args, name) is not None for name in ("reason", "topic", "since", "until")
    )
    if not (args.letter_ids or filtered or args.all):
        return fail("name letters (ID ...), filter them (--reason, --topic, ...) or pass --all")
    if args.letter_ids and (filtered or args.all):
        return fail("either IDs or filters, not both")

    async def job(settings: Settings) -> int:
        from class_management_service.cli.progress import progress_bar
        from class_management_service.messaging.dead_letter_reader import list_letters
        from class_management_service.messaging.dead_letter_replay import replay_letters
        from class_management_service.messaging.producer import SharedProducer

        producer = SharedProducer(settings)
        async with database_sessions(settings) as session_factory:
            try:
                if args.letter_ids:
                    letters = await _found(settings, session_factory, args.letter_ids)
                    if letters is None:
                        return 1
                else:
                    letters = await list_letters(settings, session_factory, _wanted(args))
                with progress_bar() as bar:
                    task = bar.add_task("replaying", total=len(letters))
                    outcome = await replay_letters(
                        session_factory,
                        await producer.get(),
                        letters,
                        only_open=not args.letter_ids,
                        progress=lambda done: bar.advance(task, done),
                    )
            finally:
                await producer.stop()
        for letter_id in outcome.replayed:
            print(f"replayed {letter_id}")
        for letter_id in outcome.skipped:
            print(f"skipped {letter_id} (no longer open)")
        print(f"{len(outcome.replayed)} replayed, {len(outcome.skipped)} skipped")
        return 0

    return run_job(job)


def _discard(args: argparse.Namespace) -> int:
    async def job(settings: Settings) -> int:
        from class_management_service.messaging.dead_letter_replay import discard_letter

        async with database_sessions(settings) as session_factory:
            letters = await _found(settings, session_factory, args.letter_ids)
            if letters is None:
                return 1
            for letter in letters:
                await discard_letter(session_factory, letter.id, args.note)
                print(f"discarded {letter.id}")
        return 0

    return run_job(job)


async def _found(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], letter_ids: list[str]
) -> list[Letter] | None:
    """The named letters, or None (after saying which are unknown) if any is."""
    from class_management_service.messaging.dead_letter_reader import (
        LETTER_ID_PATTERN,
        find_letter,
    )

    letters, unknown = [], []
    for letter_id in letter_ids:
        letter = None
        if re.match(LETTER_ID_PATTERN, letter_id):
            letter = await find_letter(settings, session_factory, letter_id)
        if letter is None:
            unknown.append(letter_id)
        else:
            letters.append(letter)
    if unknown:
        fail("no such dead letter: " + ", ".join(unknown))
        return None
    return letters
