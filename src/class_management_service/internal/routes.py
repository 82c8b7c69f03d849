"""HTTP routes of the internal feature."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
