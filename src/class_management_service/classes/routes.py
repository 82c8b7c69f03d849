"""HTTP routes of the classes feature."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
