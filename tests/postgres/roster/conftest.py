"""Shared by the roster tests: the importing teacher, the CSV request headers and roster, the import
path."""

from __future__ import annotations

from tests.http_helpers import teacher

A = teacher("teacher-a")
CSV = {**A, "Content-Type": "text/csv"}

ROSTER = (
    "first_name,last_name,legal_full_name,email\n"
    "Anna,Svensson,Anna Maria Svensson,Anna@Example.com\n"
    "Bo,Ek,,bo@example.com\n"
    "Cecilia,Åberg,,\n"
    ",Nameless,,x@example.com\n"
)


def _import_path(class_id: str, query: str = "") -> str:
    return f"/v1/classes/{class_id}/students/import{query}"
