"""The consumer loop on the in-memory broker: the shared cases plus faults only a fake can make."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from class_management_service.messaging.consumer import KafkaBatchConsumer
from class_management_service.messaging.consumer_metrics import ConsumerMetrics
from class_management_service.messaging.dead_letter import DeadLetterSink
from class_management_service.settings import ConsumerSettings
from tests.consumer_loop_cases import (
    Consumer,
    ConsumerLoopCases,
    RecordingHandler,
    committed,
    running,
    sample,
    until,
)
from tests.fakes.broker import FakeBroker, FakeDeadLetters

TOPIC = "events"


class InMemoryLoopBroker:
    def __init__(self) -> None:
        self.broker = FakeBroker()
        self.broker.create_topic(TOPIC)
        self.registry = CollectorRegistry()
        self.metrics = ConsumerMetrics(self.registry)
        self.settings = ConsumerSettings(
            name="loop",
            health_check="loop",
            topic=TOPIC,
            group_id="group",
            dead_letter_topic=f"{TOPIC}.dlq",
            bootstrap_servers="in-memory",
            client_id="loop",
            fetch_timeout_ms=20,
            initial_backoff_seconds=0.01,
            max_backoff_seconds=0.05,
        )

    async def send(self, value: bytes) -> None:
        await self.broker.append(TOPIC, value)

    def consumer(self, handler: RecordingHandler, dead_letters: DeadLetterSink) -> Consumer:
        return KafkaBatchConsumer(
            self.settings,
            handler,
            dead_letters=dead_letters,
            metrics=self.metrics,
            client=self.broker.client,
        )

    def dead_letters(self) -> DeadLetterSink:
        return FakeDeadLetters(self.broker, self.settings.dead_letter_topic)

    async def dead_lettered(self, count: int) -> list[bytes]:
        log = self.broker.log(TopicPartition(self.settings.dead_letter_topic, 0))
        await until(lambda: len(log) >= count, f"{count} dead letters")
        return [record.value or b"" for record in log]


class TestInMemoryBroker(ConsumerLoopCases):
    @pytest.fixture
    def loop_broker(self) -> InMemoryLoopBroker:
        return InMemoryLoopBroker()


@pytest.fixture
def memory() -> InMemoryLoopBroker:
    return InMemoryLoopBroker()


async def test_a_failed_commit_stays_pending_and_a_revoke_commits_it(
    memory: InMemoryLoopBroker,
) -> None:
    consumer = memory.consumer(RecordingHandler(), memory.dead_letters())
    tp = TopicPartition(TOPIC, 0)
    memory.broker.failing_commits = 1
    await memory.send(b"a")
    async with running(consumer):
        await until(lambda: memory.broker.failing_commits == 0, "the commit was attempted")
        assert (memory.settings.group_id, tp) not in memory.broker.committed
        [client] = memory.broker.clients
        await client.revoke({tp})
        # The revoke waited for the batch, then committed the work done on the partition.
        assert memory.broker.committed[(memory.settings.group_id, tp)] == 1
        assert consumer.progress.assigned == set()
        assert sample(memory, "kafka_consumer_assigned_partitions") == 0


async def test_a_restarted_consumer_resumes_after_the_committed_offset(
    memory: InMemoryLoopBroker,
) -> None:
    first = RecordingHandler()
    consumer = memory.consumer(first, memory.dead_letters())
    await memory.send(b"a")
    async with running(consumer):
        await until(lambda: committed(consumer) == 1, "the first record committed")
    await memory.send(b"b")
    second = RecordingHandler()
    restarted = memory.consumer(second, memory.dead_letters())
    async with running(restarted):
        await until(lambda: committed(restarted) == 2, "the second record committed")
    assert (first.applied, second.applied) == ([b"a"], [b"b"])
