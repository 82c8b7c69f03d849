"""ASGI entry point: ``uvicorn --factory class_management_service.asgi:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from class_management_service.bootstrap import build_app
from class_management_service.observability.logging import configure_logging
from class_management_service.settings import Settings


def create_app() -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_level, settings.service_name)
    return build_app(settings)
