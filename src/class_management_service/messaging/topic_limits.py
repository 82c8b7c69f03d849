"""Each topic's size limit as the broker reports it, for the producer's check before sending
(:mod:`~class_management_service.messaging.sized_producer`)."""

from __future__ import annotations

import asyncio
import logging

from class_management_service.settings import Settings

logger = logging.getLogger(__name__)


class TopicLimits:
    """Each topic's ``max.message.bytes`` as the broker reports it, read once per topic.

    Until it can be read (broker down, topic not created yet) the setting
    ``producer_default_max_message_bytes`` (Kafka's default) stands in, and the lookup is tried
    again next time.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._known: dict[str, int] = {}

    async def limit(self, topic: str) -> int:
        known = self._known.get(topic)
        if known is not None:
            return known
        try:
            known = await self._describe(topic)
        except Exception as exc:  # any failure: the fallback is a safe answer
            logger.warning(
                "could not read the topic's max.message.bytes; using the default",
                extra={
                    "topic": topic,
                    "error": f"{type(exc).__name__}: {exc}",
                    "default": self._settings.producer_default_max_message_bytes,
                },
            )
            return self._settings.producer_default_max_message_bytes
        self._known[topic] = known
        return known

    async def _describe(self, topic: str) -> int:
        # aiokafka only when a big record is sent (see SharedProducer.get).
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        s = self._settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=s.kafka_bootstrap_servers,
            request_timeout_ms=s.producer_request_timeout_ms,
        )
        try:
            async with asyncio.timeout(s.producer_request_timeout_ms / 1000):
                await admin.start()
                [response] = await admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})]
                )
        finally:
            await admin.close()
        # resources: (error_code, error_message, type, name, [(name, value, ...), ...])
        [(error_code, error_message, _, _, entries)] = response.resources
        if error_code:
            raise RuntimeError(f"DescribeConfigs error {error_code}: {error_message}")
        return next(int(entry[1]) for entry in entries if entry[0] == "max.message.bytes")
