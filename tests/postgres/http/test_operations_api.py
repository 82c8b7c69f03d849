"""/healthz, /metrics, the error body and request plumbing, over the in-process app."""

from __future__ import annotations

import uuid

import httpx


async def test_healthz_reports_each_dependency_and_503_when_one_is_down(
    api_client: httpx.AsyncClient,
) -> None:
    # The test app points Redis and Kafka at a closed port: they are down, the database is up.
    response = await api_client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["dependencies"]["database"] == {"status": "ok"}
    assert body["dependencies"]["redis"]["status"] == "down"
    assert body["dependencies"]["kafka"]["status"] == "down"


async def test_metrics_label_routes_by_template_not_raw_path(
    api_client: httpx.AsyncClient,
) -> None:
    for _ in range(2):
        await api_client.get(f"/v1/classes/{uuid.uuid4()}", headers={"X-User-ID": "t"})
    await api_client.get("/no/such/path/" + uuid.uuid4().hex)
    metrics = (await api_client.get("/metrics")).text
    assert 'route="/v1/classes/{class_id}"' in metrics
    assert 'route="unmatched"' in metrics
    assert "/no/such/path" not in metrics


async def test_unknown_route_gets_contract_error_body_and_correlation_id(
    api_client: httpx.AsyncClient,
) -> None:
    correlation_id = str(uuid.uuid4())
    response = await api_client.get("/nowhere", headers={"X-Correlation-ID": correlation_id})
    assert response.status_code == 404
    assert response.headers["x-correlation-id"] == correlation_id
    error = response.json()["error"]
    assert set(error) == {"code", "message", "correlation_id", "service", "timestamp", "details"}
    assert error["correlation_id"] == correlation_id
    assert error["service"] == "class_management_service"


async def test_correlation_id_is_generated_when_missing_or_malformed(
    api_client: httpx.AsyncClient,
) -> None:
    response = await api_client.get("/nowhere", headers={"X-Correlation-ID": "not-a-uuid"})
    generated = response.headers["x-correlation-id"]
    assert uuid.UUID(generated)
    assert response.json()["error"]["correlation_id"] == generated


async def test_oversized_body_is_rejected_with_413(api_client: httpx.AsyncClient) -> None:
    response = await api_client.post(
        "/v1/classes/",
        headers={"X-User-ID": "t", "Content-Type": "application/json"},
        content=b"[" + b"1," * (3 * 1024 * 1024) + b"1]",
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
