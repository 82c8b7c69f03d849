"""ASGI entry point: ``uvicorn --factory class_management_service.asgi:create_app``.

Serve it with ``class-management-service run``: that adds the request-head size limit and
deadline (``http/server.py``, through ``cli.serve.uvicorn_options``) a bare ``uvicorn`` command line
does not have.
"""

from __future__ import annotations

from fastapi import FastAPI

from class_management_service.bootstrap import build_app
from class_management_service.observability.logging import configure_logging
from class_management_service.settings import Settings


def create_app() -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_level, settings.service_name)
    return build_app(settings)
