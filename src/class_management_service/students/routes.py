"""HTTP routes of the students feature."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
