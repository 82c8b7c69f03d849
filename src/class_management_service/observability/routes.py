"""GET /healthz and GET /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from class_management_service.http.deps import ServiceContainer
from class_management_service.observability.health import run_checks
from class_management_service.observability.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Health of the service and each dependency",
    responses={503: {"description": "At least one dependency or worker is down"}},
)
async def healthz(container: ServiceContainer) -> JSONResponse:
    supervisor = container.supervisor
    results = await run_checks(
        container.health_checks, container.settings.health_check_timeout_seconds
    )
    dependencies: dict[str, Any] = {
        name: {"status": "ok" if result.ok else "down", **result.details}
        for name, result in results.items()
    }
    broken_workers = supervisor.unhealthy()
    workers = {
        name: {
            "status": "down" if name in broken_workers else "ok",
            "restarts": worker.restarts,
            **({"last_error": broken_workers[name]} if name in broken_workers else {}),
        }
        for name, worker in supervisor.states.items()
    }
    healthy = all(result.ok for result in results.values()) and not broken_workers
    down = [name for name, result in results.items() if not result.ok] + [
        f"worker {name}" for name in broken_workers
    ]
    body = {
        # The platform's tooling reads exactly "healthy"/"unhealthy" and a string message.
        "status": "healthy" if healthy else "unhealthy",
        "message": "All dependencies and workers are up."
        if healthy
        else f"Down: {', '.join(down)}.",
        "service": container.settings.service_name,
        "dependencies": dependencies,
        "workers": workers,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(container: ServiceContainer) -> Response:
    return Response(container.metrics.render(), media_type=CONTENT_TYPE_LATEST)
