"""How long Kafka may redeliver a topic's records, from its configs, and the ledger window that
follows (retention/horizon.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from class_management_service.retention.horizon import REDELIVERY_MARGIN, Redelivery

DAY_MS = 86_400_000
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("configs", "horizon"),
    [
        # A segment goes once its newest record is past retention.ms: + segment.ms.
        ({"retention.ms": str(7 * DAY_MS), "segment.ms": str(7 * DAY_MS)}, 14 * DAY),
        (
            {"retention.ms": str(DAY_MS), "segment.ms": "3600000", "cleanup.policy": "delete"},
            DAY + timedelta(hours=1),
        ),
        ({"retention.ms": str(DAY_MS), "cleanup.policy": "compact,delete"}, DAY),
    ],
)
def test_horizon_is_retention_plus_segment_plus_a_margin(
    configs: dict[str, str], horizon: timedelta
) -> None:
    assert Redelivery.from_configs(configs) == Redelivery(horizon + REDELIVERY_MARGIN)


@pytest.mark.parametrize(
    "configs",
    [
        {"retention.ms": "-1", "segment.ms": str(DAY_MS)},
        {"retention.ms": str(DAY_MS), "cleanup.policy": "compact"},
        {},  # the broker said nothing about retention: assume the worst
    ],
)
def test_unlimited_or_compacted_topics_keep_records_for_ever(configs: dict[str, str]) -> None:
    assert Redelivery.from_configs(configs) == Redelivery(None)


def test_window_is_the_configured_one_unless_kafka_keeps_records_longer() -> None:
    assert Redelivery(5 * DAY).window(30 * DAY) == 30 * DAY
    assert Redelivery(40 * DAY).window(30 * DAY) == 40 * DAY
    assert Redelivery(None).window(30 * DAY) is None
