"""/healthz with every dependency up, as the platform's tooling reads it."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from class_management_service.bootstrap import build_app
from class_management_service.settings import Settings

MakeSettings = Callable[..., Settings]


async def test_healthz_body_is_what_the_platform_tooling_reads(
    make_settings: MakeSettings, redis_url: str, kafka_bootstrap: str
) -> None:
    app = build_app(make_settings(redis_url=redis_url, kafka_bootstrap_servers=kafka_bootstrap))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            answer = await client.get("/healthz")
    finally:
        await app.state.container.close()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "healthy"
    assert isinstance(body["message"], str)
    assert body["message"]
    # Our per-dependency detail is kept next to the platform's fields.
    assert {name: dep["status"] for name, dep in body["dependencies"].items()} == {
        "database": "ok",
        "redis": "ok",
        "kafka": "ok",
    }
    assert body["service"] == "class_management_service"
