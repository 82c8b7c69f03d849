"""The retention worker's Prometheus families (built once, in ``observability.metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RetentionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deleted = Counter(
            "retention_deleted_rows_total",
            "Rows the retention worker of this instance deleted, by table.",
            ["table"],
            registry=registry,
        )
        self.rows = Gauge(
            "retention_table_rows",
            "Rows in the table, PostgreSQL's estimate (pg_class.reltuples, as of the last "
            "VACUUM/ANALYZE).",
            ["table"],
            registry=registry,
        )
        self.bytes = Gauge(
            "retention_table_bytes",
            "Bytes on disk of the table with its indexes and TOAST (pg_total_relation_size).",
            ["table"],
            registry=registry,
        )
        self.oldest_age = Gauge(
            "retention_oldest_row_age_seconds",
            "Age of the oldest row retention looks after (published outbox rows; processed "
            "events of any topic); 0 when there is none.",
            ["table"],
            registry=registry,
        )
