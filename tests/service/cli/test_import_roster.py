"""``import-roster`` as a subprocess: the HTTP import's report for the same file, idempotent,
refused for another teacher's class."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import seed_roster
from tests.service.cli.conftest import CliRunner

ROSTER = (
    "first_name,last_name,email,shoe_size\n"
    "Anna,Svensson,anna@example.com,38\n"
    "Erik,Lind,,44\n"
    "Bad,,bad@example.com,40\n"
)


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what differs between two classes: ids."""
    rows = [{k: v for k, v in row.items() if k != "student_id"} for row in report["rows"]]
    return {**report, "class_id": None, "rows": rows}


async def test_import_roster_gives_the_http_imports_report_and_a_second_run_changes_nothing(
    cli: CliRunner,
    session_factory: async_sessionmaker[AsyncSession],
    api_client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    by_cli = await seed_roster(session_factory, students=0, teacher="teacher-cli")
    by_http = await seed_roster(session_factory, students=0, teacher="teacher-http")
    csv_file = tmp_path / "roster.csv"
    csv_file.write_text(ROSTER)

    finished = await cli(
        "import-roster", str(by_cli.class_id), str(csv_file), "--teacher", "teacher-cli"
    )
    assert finished.returncode == 0, finished
    report = finished.json()
    assert report["totals"] == {
        "rows": 3,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
    }
    assert report["ignored_columns"] == ["shoe_size"]
    assert "3/3" in finished.stderr  # the progress bar's final state

    response = await api_client.post(
        f"/v1/classes/{by_http.class_id}/students/import",
        content=ROSTER,
        headers={"X-User-ID": "teacher-http", "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert _comparable(report) == _comparable(response.json())

    again, other, missing = await asyncio.gather(
        cli(
            "import-roster",
            str(by_cli.class_id),
            str(csv_file),
            "--teacher",
            "teacher-cli",
            "--rows",
            "rejected",
        ),
        cli("import-roster", str(by_http.class_id), str(csv_file), "--teacher", "teacher-cli"),
        cli("import-roster", str(by_cli.class_id), str(tmp_path / "nope.csv"), "--teacher", "t"),
    )
    assert again.returncode == 0, again
    assert again.json()["totals"]["unchanged"] == 2
    assert [row["status"] for row in again.json()["rows"]] == ["rejected"]
    assert other.returncode == 1, other  # another teacher's class
    assert "not found" in other.stderr
    assert missing.returncode == 1, missing
    assert "nope.csv" in missing.stderr
