"""The consumer loop's shared behaviour cases on the real broker (tests/consumer_loop_cases.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import async_sessionmaker

from class_management_service.messaging.consumer import KafkaBatchConsumer
from class_management_service.messaging.consumer_metrics import ConsumerMetrics
from class_management_service.messaging.dead_letter import DeadLetterPublisher, DeadLetterSink
from class_management_service.messaging.dead_letter_store import DeadLetterStore
from class_management_service.messaging.producer import SharedProducer
from class_management_service.settings import ConsumerSettings, Settings
from tests.consumer_loop_cases import Consumer, ConsumerLoopCases, RecordingHandler


class KafkaLoopBroker:
    def __init__(self, bootstrap: str, unique_name: Callable[[str], str]) -> None:
        self.registry = CollectorRegistry()
        self.metrics = ConsumerMetrics(self.registry)
        self.settings = ConsumerSettings(
            name="loop",
            health_check="loop",
            topic=unique_name("loop"),
            group_id=unique_name("loop-group"),
            dead_letter_topic=unique_name("loop-dlq"),
            bootstrap_servers=bootstrap,
            client_id="loop",
            fetch_timeout_ms=100,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
            initial_backoff_seconds=0.01,
            max_backoff_seconds=0.05,
        )
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        self._shared = SharedProducer(Settings(kafka_bootstrap_servers=bootstrap))

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(self.settings.topic, 1, 1),
                    NewTopic(self.settings.dead_letter_topic, 1, 1),
                ]
            )
        finally:
            await admin.close()
        await self.producer.start()

    async def close(self) -> None:
        await self.producer.stop()
        await self._shared.stop()

    async def send(self, value: bytes) -> None:
        await self.producer.send_and_wait(self.settings.topic, value)

    def consumer(self, handler: RecordingHandler, dead_letters: DeadLetterSink) -> Consumer:
        return KafkaBatchConsumer(
            self.settings,
            handler,
            dead_letters=dead_letters,
            metrics=self.metrics,
        )

    def dead_letters(self) -> DeadLetterSink:
        # The table is for letters too large for the topic; these never are (never connects).
        return DeadLetterPublisher(
            self._shared,
            self.settings.dead_letter_topic,
            service_name="loop",
            store=DeadLetterStore(async_sessionmaker()),
        )

    async def dead_lettered(self, count: int) -> list[bytes]:
        tp = TopicPartition(self.settings.dead_letter_topic, 0)
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers, auto_offset_reset="earliest"
        )
        await reader.start()
        try:
            reader.assign([tp])
            values: list[bytes] = []
            for _ in range(100):
                batch = await reader.getmany(tp, timeout_ms=100)
                values.extend(record.value for record in batch.get(tp, []))
                if len(values) >= count:
                    return values
            raise AssertionError(f"fewer than {count} dead letters: {values}")
        finally:
            await reader.stop()


class TestKafkaBroker(ConsumerLoopCases):
    @pytest.fixture
    async def loop_broker(
        self, kafka_bootstrap: str, unique_name: Callable[[str], str]
    ) -> AsyncIterator[KafkaLoopBroker]:
        broker = KafkaLoopBroker(kafka_bootstrap, unique_name)
        await broker.start()
        try:
            yield broker
        finally:
            await broker.close()
