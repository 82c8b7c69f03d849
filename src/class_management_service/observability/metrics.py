"""Prometheus metrics. Each app owns a registry, so several apps (tests, replicas) never collide.

:class:`Metrics` builds every family of the service once, on its own registry; the composition
root hands each worker its part (registering a family twice on one registry is an error).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from class_management_service.associations.timeout_metrics import TimeoutMetrics
from class_management_service.messaging.consumer_metrics import ConsumerMetrics
from class_management_service.outbox.metrics import OutboxMetrics
from class_management_service.retention.metrics import RetentionMetrics

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics", "Metrics"]


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # `route` is the template (/v1/classes/{class_id}), never the raw path: bounded cardinality.
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        # labels() takes a lock and builds a key on every call (~2 us a request, twice); the
        # children are looked up once per (method, route, status). Bounded like the families
        # themselves: route templates and the parser's fixed set of methods and statuses.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        children = self._children.get((method, route, status))
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http = HttpMetrics(self.registry)
        self.outbox = OutboxMetrics(self.registry)
        self.timeout = TimeoutMetrics(self.registry)
        self.retention = RetentionMetrics(self.registry)
        self.consumer = ConsumerMetrics(self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
