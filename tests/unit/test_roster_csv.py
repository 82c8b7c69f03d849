"""The roster importer's pure part: CSV parsing/validation and the import plan."""

from __future__ import annotations

import uuid

import pytest

from class_management_service.errors import MalformedRequest, PayloadTooLarge, ValidationFailed
from class_management_service.students.import_plan import ExistingStudent, plan_import
from class_management_service.students.importer import RosterRow, parse_roster


def _existing(
    first: str = "Anna",
    last: str = "Svensson",
    *,
    email: str | None = None,
    legal: str | None = None,
    in_class: bool = True,
) -> ExistingStudent:
    return ExistingStudent(uuid.uuid4(), first, last, legal, email, in_class)


def _row(
    row: int,
    first: str = "Anna",
    last: str = "Svensson",
    *,
    email: str | None = None,
    legal: str | None = None,
) -> RosterRow:
    return RosterRow(row, first, last, legal, email)


class TestParse:
    def test_reads_rows_with_header_aliases_bom_crlf_and_normalized_emails(self) -> None:
        data = (
            "\ufeffFirst Name,SURNAME,Legal-Name,E-mail,Notes\r\n"
            " Anna , Svensson ,Anna Maria Svensson, Anna@Example.COM ,x\r\n"
            "Bo,Ek,,,\r\n"
        ).encode()

        roster = parse_roster(data)

        assert roster.rows == [
            RosterRow(2, "Anna", "Svensson", "Anna Maria Svensson", "anna@example.com"),
            RosterRow(3, "Bo", "Ek", None, None),
        ]
        assert roster.rejections == []
        assert roster.ignored_columns == ["Notes"]

    @pytest.mark.parametrize("delimiter", [";", "\t"])
    def test_detects_semicolon_and_tab_delimiters(self, delimiter: str) -> None:
        data = delimiter.join(["förnamn", "efternamn", "e-post"]) + "\nÅsa;Öberg;asa@x.se\n"
        roster = parse_roster(data.replace(";", delimiter).encode())
        assert roster.rows == [RosterRow(2, "Åsa", "Öberg", None, "asa@x.se")]

    def test_row_numbers_are_file_lines_across_blank_lines_and_multiline_cells(self) -> None:
        data = b'first_name,last_name,legal_full_name\n\nAnna,S,"two\nlines"\n,,\nBo,Ek\n'

        roster = parse_roster(data)

        assert [row.row for row in roster.rows] == [6]
        # The multi-line cell holds a newline, which is a control character: rejected, row 3.
        assert [(r.row, r.reason) for r in roster.rejections] == [
            (3, "legal_full_name must not contain control characters")
        ]
        assert roster.total_rows == 2

    def test_rejects_invalid_rows_with_reasons_and_keeps_the_rest(self) -> None:
        data = "\n".join(
            [
                "first_name,last_name,email",
                ",Svensson,a@x.se",
                "Anna," + "x" * 101 + ",b@x.se",
                "Anna,Svensson,not-an-email",
                "Anna,Svensson,c@x.se,extra",
                "Anna,Svensson,d@x.se,,",
                "Bo,Ek",
            ]
        ).encode()

        roster = parse_roster(data)

        assert [(r.row, r.reason) for r in roster.rejections] == [
            (2, "first_name is empty"),
            (3, "last_name is longer than 100 characters"),
            (4, "email is not an e-mail address"),
            (5, "has 4 fields but the header names 3"),
        ]
        assert [(row.row, row.email) for row in roster.rows] == [(6, "d@x.se"), (7, None)]

    def test_rejects_repeated_emails_and_ambiguous_email_less_namesakes(self) -> None:
        data = "\n".join(
            [
                "first_name,last_name,email",
                "Anna,Svensson,anna@x.se",
                "Annie,S,ANNA@x.se",
                "anna,SVENSSON,",
                "Bo,Ek,",
            ]
        ).encode()

        roster = parse_roster(data)

        assert [row.row for row in roster.rows] == [2, 5]
        assert [(r.row, r.reason) for r in roster.rejections] == [
            (3, "duplicate e-mail (also on row 2)"),
            (4, "another row has the same name; add an e-mail to each"),
        ]

    @pytest.mark.parametrize(
        ("data", "error", "status"),
        [
            (b"first_name,last_name\nAnna,\xff\n", MalformedRequest, 400),
            (b"first_name,last_name\nAnna,S\x00\n", MalformedRequest, 400),
            (b'first_name,last_name\n"Anna"x,S\n', MalformedRequest, 400),
            (b"", ValidationFailed, 422),
            (b"\n\n", ValidationFailed, 422),
            (b"first_name,email\nAnna,a@x.se\n", ValidationFailed, 422),
            (b"first_name,firstname,last_name\n", ValidationFailed, 422),
        ],
    )
    def test_unusable_files_raise_clean_errors(
        self, data: bytes, error: type[Exception], status: int
    ) -> None:
        with pytest.raises(error) as raised:
            parse_roster(data)
        assert getattr(raised.value, "status_code", None) == status

    def test_caps_the_number_of_rows(self) -> None:
        data = ("first_name,last_name\n" + "Anna,S\n" * 4).encode()
        assert parse_roster(data, max_rows=4).total_rows == 4
        with pytest.raises(PayloadTooLarge):
            parse_roster(data + b"Bo,E\n", max_rows=4)


class TestPlan:
    def test_creates_updates_and_leaves_unchanged(self) -> None:
        same = _existing("Anna", "Svensson", email="anna@x.se", legal="Anna Maria Svensson")
        renamed = _existing("Bo", "Ek", email="bo@x.se")
        outsider = _existing("Cy", "Ho", email="cy@x.se", in_class=False)
        rows = [
            _row(2, "Anna", "Svensson", email="anna@x.se"),  # empty legal name keeps the old
            _row(3, "Bo", "Eklund", email="bo@x.se"),
            _row(4, "Cy", "Ho", email="cy@x.se"),
            _row(5, "Di", "Lu", email="di@x.se"),
        ]
        by_email = {s.email: s for s in (same, renamed, outsider) if s.email}

        plan = plan_import(rows, by_email, [same, renamed])

        assert [u.student_id for u in plan.unchanged] == [same.id]
        assert [(u.student_id, u.last_name, u.first_name, u.joins_class) for u in plan.updates] == [
            (renamed.id, "Eklund", None, False),
            (outsider.id, None, None, True),
        ]
        assert [c.row.row for c in plan.creates] == [5]

    def test_matches_email_less_rows_by_name_within_the_class(self) -> None:
        member = _existing("Anna", "Svensson", email="anna@x.se")
        twins = [_existing("Bo", "Ek"), _existing("Bo", "Ek")]
        rows = [_row(2, "ANNA", "svensson"), _row(3, "Bo", "Ek"), _row(4, "Cy", "Ho")]

        plan = plan_import(rows, {}, [member, *twins])

        # Same person, casing taken from the file; the e-mail stays.
        (update,) = plan.updates
        assert (update.student_id, update.first_name, update.last_name, update.email) == (
            member.id,
            "ANNA",
            "svensson",
            None,
        )
        assert [(r.row, r.reason) for r in plan.rejections] == [
            (3, "2 students in the class have this name; add an e-mail")
        ]
        assert [c.row.row for c in plan.creates] == [4]

    def test_gives_a_new_email_to_the_one_email_less_namesake(self) -> None:
        member = _existing("Anna", "Svensson")
        rows = [
            _row(2, "Anna", "Svensson", email="anna@x.se"),
            _row(3, "Anna", "Svensson", email="other.anna@x.se"),
        ]

        plan = plan_import(rows, {}, [member])

        (update,) = plan.updates
        assert (update.student_id, update.email, update.joins_class) == (
            member.id,
            "anna@x.se",
            False,
        )
        # The second Anna has another e-mail: another person, a new student.
        assert [c.row.row for c in plan.creates] == [3]

    def test_rejects_two_rows_that_resolve_to_one_student(self) -> None:
        member = _existing("Anna", "Svensson", email="anna@x.se")
        rows = [_row(2, "Anna", "Svensson"), _row(3, "Annie", "S", email="anna@x.se")]

        plan = plan_import(rows, {"anna@x.se": member}, [member])

        assert [u.row.row for u in plan.unchanged] == [2]
        assert [(r.row, r.reason) for r in plan.rejections] == [(3, "is the same student as row 2")]
