"""``import-roster``: a class roster from a CSV file, as the HTTP import does it."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from class_management_service.cli.common import PROG, add_command, database_sessions, run_job

if TYPE_CHECKING:
    from class_management_service.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = add_command(
        commands,
        "import-roster",
        summary="import a class roster from a CSV file (as POST .../students/import)",
        description=(
            "Create or update the teacher's students from FILE.csv and make every accepted row "
            "a member of the class, in one transaction: the same rules, events and per-row "
            "report (JSON on stdout) as POST /v1/classes/{class_id}/students/import. Progress "
            "goes to stderr. Exits 1 when the class is not the teacher's or the file is "
            "unusable as a whole."
        ),
        example=f"{PROG} import-roster 1b6f0a9e-5a4e-4d8f-9c39-2b1f6f0c2d11 roster.csv "
        "--teacher teacher-42",
        handler=_import_roster,
    )
    command.add_argument("class_id", type=uuid.UUID, metavar="CLASS_ID")
    command.add_argument("file", type=Path, metavar="FILE.csv")
    command.add_argument("--teacher", required=True, help="the class's teacher (X-User-ID)")
    command.add_argument(
        "--rows",
        choices=["all", "rejected"],
        default="all",
        help="which rows the report lists (default: all)",
    )


def _import_roster(args: argparse.Namespace) -> int:
    async def job(settings: Settings) -> int:
        import asyncio

        from class_management_service.cli.progress import progress_bar
        from class_management_service.students.importer import parse_roster
        from class_management_service.students.roster_import import import_roster
        from class_management_service.students.schemas import ImportReportRows
        from class_management_service.unit_of_work import UnitOfWork

        async with database_sessions(settings) as session_factory:
            with progress_bar() as bar:
                step = bar.add_task(f"reading {args.file.name}", total=3)
                data = await asyncio.to_thread(args.file.read_bytes)
                bar.update(step, advance=1, description="parsing")
                roster = await asyncio.to_thread(parse_roster, data)
                bar.update(step, advance=1, description=f"importing {roster.total_rows} rows")
                async with UnitOfWork(session_factory) as uow:
                    report = await import_roster(
                        uow,
                        args.teacher,
                        args.class_id,
                        roster,
                        report_rows=ImportReportRows(args.rows),
                    )
                bar.update(step, advance=1, description="imported")
        print(report.model_dump_json(indent=2))
        return 0

    return run_job(job)
