"""The course codes the platform knows (the reference rows themselves are in migrations)."""

from __future__ import annotations

import enum


class CourseCode(enum.StrEnum):
    ENG5 = "ENG5"
    ENG6 = "ENG6"
    ENG7 = "ENG7"
    SV1 = "SV1"
    SV2 = "SV2"
    SV3 = "SV3"
