"""The timeout monitor's Prometheus families (built once, in ``observability.metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class TimeoutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.auto_confirmed = Counter(
            "association_timeout_confirmed_total",
            "Essays whose suggested student the validation timeout confirmed automatically.",
            registry=registry,
        )
        self.left_unassigned = Counter(
            "association_timeout_unassigned_total",
            "Essays the validation timeout left without a student (rejected, student null).",
            ["reason"],
            registry=registry,
        )
        self.batches = Counter(
            "association_timeout_batches_total",
            "Batches finalized by the validation timeout.",
            registry=registry,
        )
