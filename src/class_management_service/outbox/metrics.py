"""The outbox relay's Prometheus families (built once, in ``observability.metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "outbox_pending_events",
            "Outbox events not yet published (queue depth).",
            registry=registry,
        )
        self.failed = Gauge(
            "outbox_failed_events",
            "Outbox events that exhausted their attempts (status failed; need an operator).",
            registry=registry,
        )
        self.oldest_pending_age = Gauge(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest unpublished outbox event (0 when none).",
            registry=registry,
        )
        self.published = Counter(
            "outbox_published_total",
            "Outbox events published to Kafka by this instance.",
            ["topic"],
            registry=registry,
        )
        self.publish_failures = Counter(
            "outbox_publish_failures_total",
            "Failed publish attempts by this instance (including broker outages).",
            ["topic"],
            registry=registry,
        )
        self.given_up = Counter(
            "outbox_events_failed_total",
            "Outbox events this instance moved to the terminal failed status.",
            ["topic"],
            registry=registry,
        )
