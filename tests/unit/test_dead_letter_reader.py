"""How a dead-letter topic's record becomes a letter (its own headers, its replay count, its
time), how filters read times, and how the CLI reads a time or an age. No servers."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord

from class_management_service.cli.dead_letters import moment
from class_management_service.messaging.dead_letter_reader import (
    LETTER_ID_PATTERN,
    Letter,
    LetterFilter,
    _from_record,
    table_letter_id,
    topic_letter_id,
)
from class_management_service.messaging.dead_letter_store import LetterStatus


def _record(headers: list[tuple[str, bytes]], timestamp_ms: int = 0) -> Letter:
    record = ConsumerRecord("x.dlq", 2, 41, timestamp_ms, 0, b"k", b"v", None, 1, 1, headers)
    return _from_record(record)


def test_a_record_dead_lettered_after_a_replay_keeps_its_count_and_loses_the_dlq_headers() -> None:
    letter = _record(
        [
            ("traceparent", b"00-abc"),
            ("dlq_replay_count", b"1"),
            ("dlq_reason", b"unknown_class"),
            ("dlq_error", b"class 1 does not exist"),
            ("dlq_original_topic", b"x"),
            ("dlq_original_partition", b"0"),
            ("dlq_original_offset", b"7"),
            ("dlq_consumer_group", b"cms"),
            ("dlq_failed_at", b"2026-11-30T12:00:00+00:00"),
        ]
    )
    assert letter.id == topic_letter_id("x.dlq", 2, 41) == "kafka:x.dlq:2:41"
    assert letter.headers == [("traceparent", b"00-abc")]
    assert letter.replays_before == 1
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == ("x", 0, 7)
    assert (letter.reason, letter.consumer_group) == ("unknown_class", "cms")
    assert letter.failed_at == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert letter.status is LetterStatus.OPEN


def test_a_record_another_producer_dead_lettered_is_dated_by_its_timestamp() -> None:
    letter = _record([("dlq_failed_at", b"yesterday")], timestamp_ms=86_400_000)
    assert letter.failed_at == datetime(1970, 1, 2, tzinfo=UTC)
    assert (letter.replays_before, letter.original_offset) == (0, None)


def test_ids_match_the_routes_pattern() -> None:
    assert re.match(LETTER_ID_PATTERN, topic_letter_id("huleedu.a-b_c", 0, 12))
    assert re.match(LETTER_ID_PATTERN, table_letter_id(uuid.uuid4()))
    assert not re.match(LETTER_ID_PATTERN, "kafka:a:b:c:0:1")


def test_filter_times_without_a_zone_are_utc() -> None:
    wanted = LetterFilter(since=datetime(2026, 1, 1), status=None)
    assert wanted.since == datetime(2026, 1, 1, tzinfo=UTC)
    letter = _record([("dlq_failed_at", b"2026-06-01T00:00:00Z")])
    assert wanted.admits(letter)
    assert not LetterFilter(until=datetime(2026, 1, 1), status=None).admits(letter)
    assert not LetterFilter(reason="schema_invalid", status=None).admits(letter)


def test_the_cli_reads_an_iso_time_or_an_age() -> None:
    assert moment("2026-11-30T12:00:00") == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert abs(moment("2h") - (datetime.now(UTC) - timedelta(hours=2))) < timedelta(seconds=5)
