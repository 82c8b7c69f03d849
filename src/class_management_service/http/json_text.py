"""Responses whose JSON body was rendered by PostgreSQL (see :mod:`class_management_service.reads`).

A route returning :class:`JsonText` declares its schema with ``response_model=``; FastAPI sends a
returned ``Response`` as it is, without validating or serializing it again.
"""

from __future__ import annotations

from fastapi import Response


class JsonText(Response):
    media_type = "application/json"
