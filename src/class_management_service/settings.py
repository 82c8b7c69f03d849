"""Service configuration, read from the environment (prefix ``CLASS_MANAGEMENT_SERVICE_``).

Constructing :class:`Settings` only reads variables; nothing here connects to anything.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "CLASS_MANAGEMENT_SERVICE_"
# The variable the platform hands every service its shared internal key in.
SHARED_INTERNAL_API_KEY = "HULEEDU_INTERNAL_API_KEY"
ROSTER_UNAUTHENTICATED_ACCESS = PREFIX + "ROSTER_UNAUTHENTICATED_ACCESS"


class ConsumerSettings(BaseModel):
    """Everything one consumer worker needs: each consumed event type has its own."""

    model_config = ConfigDict(frozen=True)

    #: The worker's name (supervisor, Kafka client id suffix).
    name: str
    #: Its entry among the /healthz checks.
    health_check: str
    topic: str
    group_id: str
    dead_letter_topic: str
    bootstrap_servers: str
    client_id: str
    max_poll_records: int = 200
    max_partition_fetch_bytes: int = 8 * 1024 * 1024
    fetch_max_bytes: int = 32 * 1024 * 1024
    fetch_timeout_ms: int = 500
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    auto_offset_reset: str = "earliest"
    # Backoff after a transient batch failure (retry.backoff_seconds).
    initial_backoff_seconds: float = 0.2
    max_backoff_seconds: float = 10.0
    # The health check fails when no poll completed, or batches kept failing, for this long.
    stall_seconds: float = 30.0


AUTHOR_MATCH_CONSUMER = "author_match_consumer"


class Settings(BaseSettings):
    # populate_by_name: code and tests pass fields by name, the environment by alias.
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", populate_by_name=True)

    service_name: str = "class_management_service"
    database_url: str = "postgresql+asyncpg://cms@127.0.0.1:5432/class_management"
    redis_url: str = "redis://127.0.0.1:6379/0"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    host: str = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces by design
    port: int = 5002
    log_level: str = "INFO"

    # The key the platform's internal callers (BFF, NLP, essay lifecycle) present. No default:
    # without one (or with an empty one) the internal routes refuse every caller.
    internal_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(PREFIX + "INTERNAL_API_KEY", SHARED_INTERNAL_API_KEY),
    )
    # Lets a request with neither an internal key nor X-User-ID read a class roster: what the
    # platform's NLP service sends today. Only for a private network the gateway does not expose.
    roster_unauthenticated_access: bool = False

    # Connections are opened on demand up to pool_size and then kept. No overflow by default:
    # under sustained load an overflow connection is opened and closed again per request (the
    # HTTP benchmark measured a third of GET throughput lost to connecting); requests beyond
    # the pool wait their turn, first come first served (see db.FairAsyncQueuePool).
    database_pool_size: int = 10
    database_max_overflow: int = 0
    # The GET routes' own pool of asyncpg connections (reads.ReadOnlyDatabase), opened on demand.
    database_read_pool_size: int = 10
    # Bounded waits: nothing waits on the database without a limit. A request that cannot get a
    # pooled connection, or a row/table lock, within these answers 503 (retryable) instead of
    # hanging, and a worker backs off; a runaway statement is cancelled.
    database_pool_timeout_seconds: float = 5.0
    database_connect_timeout_seconds: float = 5.0
    database_lock_timeout_ms: int = 5_000
    database_statement_timeout_ms: int = 60_000

    # Kafka consumer of BatchAuthorMatchesSuggestedV1.
    consumer_group_id: str = "class_management_service"
    author_matches_topic: str = "huleedu.batch.author.matches.suggested.v1"
    dead_letter_topic: str = "huleedu.batch.author.matches.suggested.v1.dlq"
    consumer_max_poll_records: int = 200
    # What one fetch from the broker may return, per partition and in all: a poll batch is
    # only as large as the fetched records it is taken from. Kafka's default 1 MiB per
    # partition holds only ~36 author-match events of 30 essays (~28 KB each); 8 MiB holds
    # max_poll_records of them. Larger fetches cost memory (16 MiB: +60 MiB peak RSS) without
    # making batches larger.
    consumer_max_partition_fetch_bytes: int = 8 * 1024 * 1024
    consumer_fetch_max_bytes: int = 32 * 1024 * 1024
    consumer_fetch_timeout_ms: int = 500
    consumer_session_timeout_ms: int = 10_000
    consumer_heartbeat_interval_ms: int = 3_000
    consumer_max_poll_interval_ms: int = 300_000
    consumer_auto_offset_reset: str = "earliest"
    producer_request_timeout_ms: int = 10_000

    # Redis fast-path idempotency keys: short while an event is in flight, long once done.
    idempotency_in_flight_ttl_seconds: int = 60
    idempotency_completed_ttl_seconds: int = 86_400

    # Outbox relay.
    outbox_poll_interval_seconds: float = 1.0
    outbox_batch_size: int = 100
    outbox_max_attempts: int = 10
    # How long a claimed row stays invisible to other relays while it is being sent; unset:
    # 30 s or three producer request timeouts, whichever is longer.
    outbox_lease_seconds: float | None = None

    # Timeout auto-confirmation of associations nobody reviewed.
    validation_timeout_hours: float = 24.0
    timeout_confidence_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    timeout_monitor_interval_seconds: float = 60.0
    # Overdue batches one scan picks up (a pass scans again until none is left).
    timeout_monitor_batch_size: int = 100

    # Retention (retention/): published outbox rows and processed-event records older than
    # their windows are deleted, a batch per short transaction, a pass every interval. The
    # processed-event window must outlast anything Kafka can still redeliver; the worker checks
    # it against each consumed topic's retention on the broker and raises it where it is shorter.
    retention_outbox_published_days: float = Field(default=7.0, gt=0)
    retention_processed_events_days: float = Field(default=30.0, gt=0)
    retention_batch_size: int = Field(default=1000, gt=0)
    # Between two batches: leaves the database to ingestion while a backlog is worked off
    # (1,000 rows per ~30 ms is still billions of rows a day).
    retention_batch_pause_seconds: float = 0.02
    retention_interval_seconds: float = 300.0
    # /healthz shows the worker behind when a table's oldest row is older than its window + this.
    retention_grace_seconds: float = 3600.0

    # Auto-confirm policy of ingestion (associations/auto_confirm.py), off unless both are set:
    # an essay whose best valid confidence is >= MIN_CONFIDENCE and leads the second best by
    # >= MIN_MARGIN is stored confirmed by "auto".
    auto_confirm_min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    auto_confirm_min_margin: float | None = Field(default=None, ge=0.0, le=1.0)

    # Health: the consumer loop must have completed a poll this recently to count as progressing.
    health_consumer_stall_seconds: float = 30.0
    # /healthz answers within 1 s: each dependency check gets this long.
    health_check_timeout_seconds: float = 0.8

    # Workers can be switched off (e.g. an API-only replica, or tests of one worker).
    run_consumer: bool = True
    run_outbox_relay: bool = True
    run_timeout_monitor: bool = True
    run_retention: bool = True

    max_request_body_bytes: int = 5 * 1024 * 1024
    # The time a request's body may take to arrive whole (408 after): 5 MiB in 30 s is a client
    # below ~1.4 Mbit/s; a roster upload is kilobytes.
    request_body_timeout_seconds: float = 30.0
    # The request line and headers (431 beyond) and the time they may take to arrive (408 after;
    # slowloris). The limit fits the longest head a schema-valid request has: class-info's
    # 20,000-character batch_ids percent-encoded (up to 12 bytes a character), plus headers.
    max_request_head_bytes: int = 256 * 1024
    request_head_timeout_seconds: float = 10.0

    # One JSON log line per HTTP request at INFO when true; otherwise at DEBUG (seen with
    # LOG_LEVEL=DEBUG), while 5xx answers are always logged (WARNING). Off by default: the line
    # cost 14 % of a GET's CPU (bench: docs/benchmarks.md), and the per-route request counts
    # and latency histograms on /metrics answer what an access log would be read for.
    access_log: bool = False

    # Message sizes (records are gzip-compressed, see messaging/producer.py). The largest
    # uncompressed record the producer accepts; what the broker takes is checked per topic
    # against its max.message.bytes, read from the broker (this default until it can be read).
    producer_max_request_size_bytes: int = 16 * 1024 * 1024
    producer_default_max_message_bytes: int = 1_048_588

    def consumer(
        self,
        name: str,
        *,
        health_check: str,
        topic: str,
        dead_letter_topic: str,
        group_id: str | None = None,
    ) -> ConsumerSettings:
        """A consumer of ``topic`` with the shared consumer tuning.

        Each consumer has its own group by default (``<consumer_group_id>.<name>``), so one
        consumer's rebalances never pause another.
        """
        return ConsumerSettings(
            name=name,
            health_check=health_check,
            topic=topic,
            group_id=group_id or f"{self.consumer_group_id}.{name}",
            dead_letter_topic=dead_letter_topic,
            bootstrap_servers=self.kafka_bootstrap_servers,
            client_id=f"{self.service_name}-{name}",
            max_poll_records=self.consumer_max_poll_records,
            max_partition_fetch_bytes=self.consumer_max_partition_fetch_bytes,
            fetch_max_bytes=self.consumer_fetch_max_bytes,
            fetch_timeout_ms=self.consumer_fetch_timeout_ms,
            session_timeout_ms=self.consumer_session_timeout_ms,
            heartbeat_interval_ms=self.consumer_heartbeat_interval_ms,
            max_poll_interval_ms=self.consumer_max_poll_interval_ms,
            auto_offset_reset=self.consumer_auto_offset_reset,
            stall_seconds=self.health_consumer_stall_seconds,
        )

    @property
    def author_match_consumer(self) -> ConsumerSettings:
        return self.consumer(
            AUTHOR_MATCH_CONSUMER,
            health_check="kafka_consumer",
            topic=self.author_matches_topic,
            dead_letter_topic=self.dead_letter_topic,
            group_id=self.consumer_group_id,
        )

    @field_validator("internal_api_key")
    @classmethod
    def _empty_key_is_no_key(cls, key: SecretStr | None) -> SecretStr | None:
        return key if key is not None and key.get_secret_value() else None
