"""Prometheus metrics of the consumer workers (``Metrics.consumer``).

Every consumer of a process shares the families; its series are told apart by their ``topic``
label (each consumer reads its own topic), so a second consumer adds series, not families.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "kafka_consumer_messages_consumed_total",
            "Records fetched from Kafka (redeliveries after a retry count again).",
            ["topic"],
            registry=registry,
        )
        self.processed = Counter(
            "kafka_consumer_messages_processed_total",
            "Records whose effects are committed: applied now, or found already applied.",
            ["topic", "outcome"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "kafka_consumer_messages_dead_lettered_total",
            "Poison records published to the dead-letter topic, by reason.",
            ["topic", "reason"],
            registry=registry,
        )
        self.batch_failures = Counter(
            "kafka_consumer_batch_failures_total",
            "Partition batches that failed transiently and will be retried.",
            ["topic"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "kafka_consumer_batch_duration_seconds",
            "Time to handle one partition batch, from decoding to the offset commit.",
            ["topic"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_size = Histogram(
            "kafka_consumer_batch_records",
            "Records per partition batch.",
            ["topic"],
            registry=registry,
            buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500, 1000),
        )
        self.committed_offset = Gauge(
            "kafka_consumer_committed_offset",
            "Last offset committed by this consumer (next offset to read), per partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.lag = Gauge(
            "kafka_consumer_lag",
            "Records behind the partition's high watermark, per assigned partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "kafka_consumer_assigned_partitions",
            "Partitions currently assigned to this consumer.",
            ["topic"],
            registry=registry,
        )
        self.last_poll = Gauge(
            "kafka_consumer_last_poll_timestamp_seconds",
            "Unix time of the last completed poll.",
            ["topic"],
            registry=registry,
        )
