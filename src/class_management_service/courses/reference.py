"""The six courses the platform knows; the migration seeds exactly these rows."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from class_management_service.courses.domain import CourseCode

# uuid5 ids are stable across databases, so seeds, tests and fixtures agree on them.
_NAMESPACE = uuid.UUID("6f1c1c1e-6b7a-4d0e-9a53-8d2f3f0c7a10")


class CourseSeed(NamedTuple):
    id: uuid.UUID
    course_code: CourseCode
    name: str
    language: str


def course_id(code: CourseCode) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, code.value)


COURSES: tuple[CourseSeed, ...] = tuple(
    CourseSeed(course_id(code), code, name, language)
    for code, name, language in (
        (CourseCode.ENG5, "English 5", "en"),
        (CourseCode.ENG6, "English 6", "en"),
        (CourseCode.ENG7, "English 7", "en"),
        (CourseCode.SV1, "Svenska 1", "sv"),
        (CourseCode.SV2, "Svenska 2", "sv"),
        (CourseCode.SV3, "Svenska 3", "sv"),
    )
)
