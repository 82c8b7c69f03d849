"""W3C trace context (pure): carried into envelopes and logs, read from incoming envelopes."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from class_management_service.associations.events import decode_author_match_event
from class_management_service.messaging.envelope import kafka_headers, new_envelope
from class_management_service.observability.context import (
    continued_trace,
    current_trace_carrier,
    current_trace_id,
)
from class_management_service.observability.logging import JsonFormatter
from tests.factories import encode, envelope, essay

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _envelope_metadata() -> dict[str, object]:
    built = new_envelope(
        event_type="some.topic", data={}, correlation_id=uuid.uuid4(), partition_key="key-1"
    )
    return dict(built.metadata or {})


def test_envelopes_carry_the_current_trace_context_and_only_then() -> None:
    assert _envelope_metadata() == {"partition_key": "key-1"}
    with continued_trace({"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"}):
        metadata = _envelope_metadata()
        headers = kafka_headers(
            new_envelope(
                event_type="some.topic", data={}, correlation_id=uuid.uuid4(), partition_key="k"
            )
        )
    assert metadata == {
        "partition_key": "key-1",
        "traceparent": TRACEPARENT,
        "tracestate": "congo=t61rcWkgMzE",
    }
    assert headers["traceparent"] == TRACEPARENT
    # The trace ends with the block that continued it.
    assert current_trace_carrier() == {}
    assert current_trace_id() is None


@pytest.mark.parametrize("malformed", ["", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01"])
def test_a_malformed_traceparent_is_no_trace(malformed: str) -> None:
    with continued_trace({"traceparent": malformed}):
        assert current_trace_id() is None
        assert "traceparent" not in _envelope_metadata()


def test_log_lines_carry_the_trace_id() -> None:
    formatter = JsonFormatter("class_management_service")
    record = logging.LogRecord("test", logging.INFO, __file__, 1, "hello", (), None)
    assert "trace_id" not in json.loads(formatter.format(record))
    with continued_trace({"traceparent": TRACEPARENT}):
        assert json.loads(formatter.format(record))["trace_id"] == TRACE_ID


def test_incoming_envelope_metadata_gives_the_events_trace_context() -> None:
    incoming = envelope(uuid.uuid4(), [essay(uuid.uuid4())])
    incoming["metadata"] = {
        "partition_key": "batch",
        "traceparent": TRACEPARENT,
        "tracestate": "congo=t61rcWkgMzE",
        "unrelated": 1,
    }
    decoded = decode_author_match_event(encode(incoming))
    assert decoded.trace_context == {"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"}
    incoming["metadata"] = None
    assert decode_author_match_event(encode(incoming)).trace_context == {}
