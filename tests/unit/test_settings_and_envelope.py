from __future__ import annotations

import logging
import uuid

import pytest

from class_management_service.messaging.envelope import (
    EventEnvelope,
    kafka_headers,
    new_envelope,
)
from class_management_service.observability.context import parse_correlation_id
from class_management_service.settings import Settings


def test_settings_read_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASS_MANAGEMENT_SERVICE_PORT", "6001")
    monkeypatch.setenv("CLASS_MANAGEMENT_SERVICE_KAFKA_BOOTSTRAP_SERVERS", "broker:1234")
    settings = Settings()
    assert settings.port == 6001
    assert settings.kafka_bootstrap_servers == "broker:1234"


def test_default_port_is_the_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLASS_MANAGEMENT_SERVICE_PORT", raising=False)
    assert Settings().port == 5002


def test_envelope_round_trips_and_headers_match() -> None:
    correlation_id = uuid.uuid4()
    envelope = new_envelope(
        event_type="huleedu.class.created.v1",
        data={"class_id": "x"},
        correlation_id=correlation_id,
        partition_key="x",
    )
    decoded = EventEnvelope.model_validate_json(envelope.model_dump_json())
    assert decoded == envelope
    headers = kafka_headers(envelope)
    assert headers == {
        "event_id": str(envelope.event_id),
        "event_type": "huleedu.class.created.v1",
        "correlation_id": str(correlation_id),
        "source_service": "class_management_service",
        "schema_version": "1",
        "content_type": "application/json",
    }


def test_envelope_tolerates_unknown_fields() -> None:
    raw = new_envelope(
        event_type="t", data={}, correlation_id=uuid.uuid4(), partition_key="k"
    ).model_dump(mode="json")
    raw["something_new"] = {"from": "a newer producer"}
    assert EventEnvelope.model_validate(raw).event_type == "t"


@pytest.mark.parametrize("raw", [None, "", "not-a-uuid", "x" * 500])
def test_bad_correlation_ids_are_replaced_not_rejected(raw: str | None) -> None:
    assert isinstance(parse_correlation_id(raw), uuid.UUID)


def test_valid_correlation_id_is_kept() -> None:
    value = uuid.uuid4()
    assert parse_correlation_id(str(value)) == value


def test_repeated_log_records_are_suppressed_within_the_window() -> None:
    from class_management_service.observability.logging import RepeatSuppressor

    suppressor = RepeatSuppressor(window_seconds=3600)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("aiokafka.conn", logging.ERROR, "", 0, msg, (), None)

    assert suppressor.filter(record("Unable to connect to %s"))
    assert not suppressor.filter(record("Unable to connect to %s"))
    assert not suppressor.filter(record("Unable to connect to %s"))
    assert suppressor.filter(record("Another problem"))
    expired = RepeatSuppressor(window_seconds=0)
    expired.filter(record("x"))
    again = record("x")
    assert expired.filter(again)
