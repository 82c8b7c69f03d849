"""HTTP routes of the associations feature."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
