"""The keyset cursor codec (``http/cursor.py``): what it issues it reads back, only for the list
it was issued for, and anything altered, made up or of the wrong kind is the contract's 400."""

from __future__ import annotations

import base64
import json

import pytest

from class_management_service.errors import MalformedRequest
from class_management_service.http import cursor as cursors
from class_management_service.http.cursor import Cursor, KeyKind

KINDS = (KeyKind.BOOLEAN, KeyKind.TEXT, KeyKind.TIMESTAMP, KeyKind.UUID)
KEY = (
    False,
    "svensson anna",
    "2026-01-02T03:04:05.000006Z",
    "1b6f0a9e-5a4e-4d8f-9c39-2b1f6f0c2d11",
)
BOUND = cursors.binding("students:email", {"teacher_id": "teacher-a", "pattern": None})


def _issued() -> str:
    return cursors.encode(Cursor(KEY, position=40, total=123, binding=BOUND))


def _forged(payload: list[object]) -> str:
    """A token whose checksum matches ``payload``: what someone who read the source can make."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    checksum = cursors._checksum(raw)
    return base64.urlsafe_b64encode(checksum + raw).rstrip(b"=").decode()


def test_an_issued_cursor_reads_back_and_binds_its_parameters_as_text() -> None:
    cursor = cursors.decode(_issued(), BOUND, KINDS)
    assert cursor == Cursor(KEY, 40, 123, BOUND)
    assert cursor.parameters() == {
        "after_0": "false",
        "after_1": "svensson anna",
        "after_2": KEY[2],
        "after_3": KEY[3],
    }
    assert set(_issued()) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "values",
    [
        {"teacher_id": "teacher-b", "pattern": None},
        {"teacher_id": "teacher-a", "pattern": "%a%"},
    ],
)
def test_another_teacher_or_filter_is_another_list(values: dict[str, object]) -> None:
    with pytest.raises(MalformedRequest, match="another list"):
        cursors.decode(_issued(), cursors.binding("students:email", values), KINDS)
    with pytest.raises(MalformedRequest, match="another list"):
        cursors.decode(_issued(), cursors.binding("students:-email", values), KINDS)


def test_an_altered_or_made_up_cursor_is_refused() -> None:
    token = _issued()
    altered = [
        token[:-1],
        token[:5] + ("A" if token[5] != "A" else "B") + token[6:],
        "",
        "!!!",
        "é",
        "AAAAAAAAAAAAAAAAAAAAAAAA",
    ]
    for bad in altered:
        with pytest.raises(MalformedRequest):
            cursors.decode(bad, BOUND, KINDS)


@pytest.mark.parametrize(
    "payload",
    [
        [BOUND, -1, 123, list(KEY)],  # negative position
        [BOUND, 40, 2**63, list(KEY)],  # beyond bigint
        [BOUND, 40, True, list(KEY)],  # not an int
        [BOUND, 40, 123, list(KEY)[:3]],  # key too short
        [BOUND, 40, 123, ["false", *KEY[1:]]],  # boolean as text
        [BOUND, 40, 123, [False, "a\x00b", *KEY[2:]]],  # NUL: PostgreSQL refuses it
        [BOUND, 40, 123, [False, KEY[1], "yesterday", KEY[3]]],  # not a timestamp
        [BOUND, 40, 123, [False, KEY[1], KEY[2], "not-a-uuid"]],
        {"not": "a list"},
    ],
)
def test_a_forged_cursor_never_reaches_the_database_in_a_form_it_refuses(payload: object) -> None:
    with pytest.raises(MalformedRequest):
        cursors.decode(_forged(payload), BOUND, KINDS)  # type: ignore[arg-type]
