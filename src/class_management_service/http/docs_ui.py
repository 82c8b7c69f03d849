"""The API documents and their pages, served with no request leaving the service.

``/docs`` is Swagger UI over ``/openapi.json``, ``/asyncapi`` the AsyncAPI viewer over
``/asyncapi.json``. Their scripts and styles come from Python packages that ship them
(``swagger-ui-bundle-v2``: Swagger UI's own release files; ``asyncapi-viewer``: a standalone
AsyncAPI 2/3 renderer) and are served from this process, so the pages work on a private network
that reaches no CDN.
"""

from __future__ import annotations

import html
import json
from functools import cache

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from class_management_service.settings import Settings

SWAGGER_ASSETS = "/docs/assets"
ASYNCAPI_ASSETS = "/asyncapi/assets"
ASYNCAPI_JSON = "/asyncapi.json"


class _AsyncAPIViewerAssets:
    """The AsyncAPI viewer's files, served by a ``StaticFiles`` made on the first request:
    importing ``asyncapi_viewer`` loads Python-Markdown and PyYAML (~0.025 s of CPU), which
    most processes, never asked for the page, do not need."""

    def __init__(self) -> None:
        self._files: StaticFiles | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._files is None:
            from asyncapi_viewer.assets import STATIC_DIR

            self._files = StaticFiles(directory=STATIC_DIR)
        await self._files(scope, receive, send)


def install_docs(app: FastAPI, settings: Settings) -> None:
    """``/docs``, ``/asyncapi`` and ``/asyncapi.json`` (none of them in the OpenAPI document)."""
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    app.mount(ASYNCAPI_ASSETS, _AsyncAPIViewerAssets(), name="asyncapi-viewer")
    router = APIRouter(include_in_schema=False)

    @cache
    def asyncapi_json() -> bytes:
        # Built on first use, not at start-up: most replicas never serve it, and the catalog
        # behind it (every event's schema) is ~0.05 s of CPU to import.
        from class_management_service.asyncapi.document import build_document

        document = build_document(settings, title=app.title, version=app.version)
        return json.dumps(document).encode()

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - OpenAPI",
            swagger_js_url=f"{root}{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_ASSETS}/favicon-32x32.png",
        )

    @router.get(ASYNCAPI_JSON)
    async def asyncapi_document() -> Response:
        return Response(asyncapi_json(), media_type="application/json")

    @router.get("/asyncapi")
    async def asyncapi_page(request: Request) -> HTMLResponse:
        from asyncapi_viewer import assets as asyncapi_assets

        root = request.scope.get("root_path", "")
        loader = asyncapi_assets.viewer_loader_html(
            f"{root}{ASYNCAPI_ASSETS}/{asyncapi_assets.VIEWER_MODULE}",
            f"{root}{ASYNCAPI_ASSETS}/{asyncapi_assets.VIEWER_THEME}",
            asyncapi_assets.integrity(asyncapi_assets.VIEWER_MODULE),
            asyncapi_assets.integrity(asyncapi_assets.VIEWER_THEME),
        )
        title = html.escape(f"{app.title} - AsyncAPI")
        source = html.escape(f"{root}{ASYNCAPI_JSON}", quote=True)
        return HTMLResponse(
            "<!doctype html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>\n{loader}\n'
            f'</head><body><asyncapi-viewer src="{source}" sidebar></asyncapi-viewer></body></html>'
        )

    app.include_router(router)
