"""/healthz of the real process follows its dependencies: 503 soon after one stops, 200 again
after it comes back (the foundation's operational promise)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.service.conftest import ServiceProcess
from tests.waiting import wait_for


async def _wait_for_health(
    service: ServiceProcess, status: int, within: float
) -> tuple[float, dict[str, Any]]:
    """Poll /healthz until it answers ``status``; return how long that took and the body."""
    started = time.monotonic()
    body: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=service.base_url, timeout=5.0) as client:

        async def answers() -> bool:
            nonlocal body
            response = await client.get("/healthz")
            body = response.json()
            return response.status_code == status

        answered_at = await wait_for(
            answers,
            within=within,
            every=0.2,
            what=lambda: f"/healthz {status}; last body {body}\n{service.log_tail()}",
        )
    return answered_at - started, body


async def test_healthz_tracks_redis_and_broker_outages(
    service_process: ServiceProcess, redis_server: Any, kafka_server: Any
) -> None:
    _, body = await _wait_for_health(service_process, 200, within=30)
    assert {name for name, dep in body["dependencies"].items() if dep["status"] == "ok"} >= {
        "database",
        "redis",
        "kafka",
        "kafka_consumer",
    }

    redis_server.stop()
    try:
        seconds, body = await _wait_for_health(service_process, 503, within=10)
        assert body["dependencies"]["redis"]["status"] == "down"
        assert seconds < 10
    finally:
        redis_server.start()
    await _wait_for_health(service_process, 200, within=15)

    kafka_server.stop()
    try:
        seconds, body = await _wait_for_health(service_process, 503, within=15)
        assert body["dependencies"]["kafka"]["status"] == "down"
    finally:
        kafka_server.start()
    await _wait_for_health(service_process, 200, within=45)
