"""HttpMetrics.observe: the values /metrics shows, per (method, route, status)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from class_management_service.observability.metrics import HttpMetrics


def test_observe_counts_each_status_and_latency_per_route() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    for status, seconds in ((200, 0.002), (200, 0.03), (404, 0.004)):
        metrics.observe("GET", "/v1/classes/{class_id}", status, seconds)
    metrics.observe("POST", "/v1/classes/", 201, 0.2)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    route = {"method": "GET", "route": "/v1/classes/{class_id}"}
    assert sample("http_requests_total", **route, status="200") == 2
    assert sample("http_requests_total", **route, status="404") == 1
    assert sample("http_requests_total", method="POST", route="/v1/classes/", status="201") == 1
    assert sample("http_request_duration_seconds_count", **route) == 3
    assert sample("http_request_duration_seconds_sum", **route) == pytest.approx(0.036)
    assert sample("http_request_duration_seconds_bucket", **route, le="0.005") == 2
