"""How long Kafka may still redeliver a consumed topic's records, as the broker says.

A ``processed_events`` row is the only thing that stops a redelivered event from being applied
twice, so it must outlive every copy of the event Kafka still holds: a consumer group that lost
its offsets (``auto_offset_reset=earliest``), a replica seeking back or a replay can read any
record still in the log. Kafka deletes a log segment only once its *newest* record is older than
``retention.ms``, and a segment spans up to ``segment.ms`` of records, so a record can be read
for up to ``retention.ms + segment.ms`` (plus the broker's retention check interval, a few
minutes: :data:`REDELIVERY_MARGIN`). A topic that is compacted, or whose ``retention.ms`` is
``-1``, keeps records forever: its ledger rows are never old enough to delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

# The broker's log.retention.check.interval.ms (5 min by default) and clock differences between
# the broker and the database, with room to spare.
REDELIVERY_MARGIN = timedelta(hours=1)
_UNKNOWN_TOPIC_OR_PARTITION = 3
_CONFIGS = ("retention.ms", "segment.ms", "cleanup.policy")


@dataclass(frozen=True)
class Redelivery:
    """For how long Kafka may redeliver a topic's records; ``None``: for ever."""

    horizon: timedelta | None

    @classmethod
    def from_configs(cls, configs: Mapping[str, str | None]) -> Redelivery:
        retention_ms = int(configs.get("retention.ms") or -1)
        policies = (configs.get("cleanup.policy") or "delete").split(",")
        if retention_ms < 0 or "delete" not in policies:
            return cls(None)
        segment_ms = int(configs.get("segment.ms") or 0)
        return cls(timedelta(milliseconds=retention_ms + segment_ms) + REDELIVERY_MARGIN)

    def window(self, configured: timedelta) -> timedelta | None:
        """The window a ledger row of this topic is kept: ``configured``, or longer when Kafka
        may redeliver for longer (``None``: keep for ever)."""
        if self.horizon is None:
            return None
        return max(configured, self.horizon)


# A topic the broker does not know holds no records that could come back.
NOTHING_TO_REDELIVER = Redelivery(timedelta(0))


class RedeliveryLookup(Protocol):
    async def __call__(self, topics: Collection[str]) -> dict[str, Redelivery]:
        """What the broker says about each of ``topics`` it could answer for; raises when it
        cannot be asked at all."""
        ...


class BrokerRedelivery:
    """Asks the broker (``DescribeConfigs``) for the topics' retention settings."""

    def __init__(self, bootstrap_servers: str, *, timeout_seconds: float) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._timeout_seconds = timeout_seconds

    async def __call__(self, topics: Collection[str]) -> dict[str, Redelivery]:
        if not topics:
            return {}
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap_servers,
            request_timeout_ms=int(self._timeout_seconds * 1000),
        )
        try:
            async with asyncio.timeout(self._timeout_seconds):
                await admin.start()
                responses = await admin.describe_configs(
                    [
                        ConfigResource(ConfigResourceType.TOPIC, topic, dict.fromkeys(_CONFIGS))
                        for topic in topics
                    ]
                )
        finally:
            await admin.close()
        found: dict[str, Redelivery] = {}
        for response in responses:
            # resources: (error_code, error_message, type, name, [(name, value, ...), ...])
            # A topic the broker gave another error for is left out: not known yet.
            for error_code, _, _, topic, entries in response.resources:
                if error_code == _UNKNOWN_TOPIC_OR_PARTITION:
                    found[topic] = NOTHING_TO_REDELIVER
                elif not error_code:
                    found[topic] = Redelivery.from_configs(
                        {entry[0]: entry[1] for entry in entries}
                    )
        return found
