"""Service configuration, read from the environment (prefix ``CLASS_MANAGEMENT_SERVICE_``).

Constructing :class:`Settings` only reads variables; nothing here connects to anything.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLASS_MANAGEMENT_SERVICE_", extra="ignore")

    service_name: str = "class_management_service"
    database_url: str = "postgresql+asyncpg://cms@127.0.0.1:5432/class_management"
    redis_url: str = "redis://127.0.0.1:6379/0"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    host: str = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces by design
    port: int = 5002
    log_level: str = "INFO"

    # The platform's internal callers (NLP, essay lifecycle) present this key.
    internal_api_key: SecretStr = SecretStr("dev-internal-api-key")

    # Connections are opened on demand up to pool_size and then kept. No overflow by default:
    # under sustained load an overflow connection is opened and closed again per request (the
    # HTTP benchmark measured a third of GET throughput lost to connecting); requests beyond
    # the pool wait their turn, first come first served (see db.FairAsyncQueuePool).
    database_pool_size: int = 10
    database_max_overflow: int = 0
    # The GET routes' own pool of asyncpg connections (reads.ReadOnlyDatabase), opened on demand.
    database_read_pool_size: int = 10

    # Kafka consumer of BatchAuthorMatchesSuggestedV1.
    consumer_group_id: str = "class_management_service"
    author_matches_topic: str = "huleedu.batch.author.matches.suggested.v1"
    dead_letter_topic: str = "huleedu.batch.author.matches.suggested.v1.dlq"
    consumer_max_poll_records: int = 200
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

    # Timeout auto-confirmation of associations nobody reviewed.
    validation_timeout_hours: float = 24.0
    timeout_confidence_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    timeout_monitor_interval_seconds: float = 60.0

    # Health: the consumer loop must have completed a poll this recently to count as progressing.
    health_consumer_stall_seconds: float = 30.0
    health_check_timeout_seconds: float = 2.0

    # Workers can be switched off (e.g. an API-only replica, or tests of one worker).
    run_consumer: bool = True
    run_outbox_relay: bool = True
    run_timeout_monitor: bool = True

    max_request_body_bytes: int = 5 * 1024 * 1024
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
