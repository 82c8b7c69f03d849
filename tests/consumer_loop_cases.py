"""The consumer loop's behaviour cases, run against two brokers (FastStream's pattern).

``tests/unit/test_consumer_loop.py`` runs them on the in-memory fake (``tests/fakes/broker.py``),
``tests/kafka/test_consumer_loop.py`` on the real broker: each subclass provides ``loop_broker``.
The handler is a tiny in-memory one, so only the loop is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from class_management_service.messaging.batch import BatchOutcome, Inbound, PoisonMessage, Record
from class_management_service.messaging.consumer import KafkaBatchConsumer
from class_management_service.messaging.dead_letter import DeadLetter, DeadLetterSink
from class_management_service.settings import ConsumerSettings

Consumer = KafkaBatchConsumer[bytes, list[bytes]]


class LoopBroker(Protocol):
    settings: ConsumerSettings
    registry: CollectorRegistry

    async def send(self, value: bytes) -> None: ...

    def consumer(self, handler: RecordingHandler, dead_letters: DeadLetterSink) -> Consumer: ...

    def dead_letters(self) -> DeadLetterSink: ...

    async def dead_lettered(self, count: int) -> list[bytes]:
        """The values on the dead-letter topic, once there are ``count`` of them."""
        ...


class RecordingHandler:
    """Values starting with ``poison`` are poison; ``failures`` applies fail transiently."""

    def __init__(self, failures: int = 0) -> None:
        self.applied: list[bytes] = []
        self.failures = failures
        self.attempts = 0

    def decode(self, record: Record) -> bytes:
        value: bytes = record.value
        if value.startswith(b"poison"):
            raise PoisonMessage("poison", value.decode())
        return value

    async def prepare(self, batch: Sequence[Inbound[bytes]]) -> list[bytes]:
        return [item.message for item in batch]

    async def apply(self, values: list[bytes]) -> BatchOutcome:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the database is down")
        new = [value for value in values if value not in self.applied]
        self.applied.extend(new)
        return BatchOutcome(applied=len(new), duplicates=len(values) - len(new))


class FailingDeadLetters:
    """Fails the first ``failures`` publishes of letters; notes the committed offset at each."""

    def __init__(self, inner: DeadLetterSink, failures: int, committed: Callable[[], int | None]):
        self._inner = inner
        self._failures = failures
        self._committed = committed
        self.committed_at_attempts: list[int | None] = []

    async def publish(self, letters: Sequence[DeadLetter], *, group_id: str) -> None:
        if not letters:
            return
        self.committed_at_attempts.append(self._committed())
        if self._failures:
            self._failures -= 1
            raise ConnectionError("the broker is down")
        await self._inner.publish(letters, group_id=group_id)


def committed(consumer: Consumer) -> int | None:
    return consumer.progress.committed.get(TopicPartition(consumer.topic, 0))


async def until(condition: Callable[[], bool], what: str, polls: int = 2000) -> None:
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@contextlib.asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def sample(broker: LoopBroker, name: str, **labels: str) -> float:
    value = broker.registry.get_sample_value(name, {"topic": broker.settings.topic, **labels})
    return 0.0 if value is None else value


class ConsumerLoopCases:
    @pytest.fixture
    def loop_broker(self) -> LoopBroker:
        raise NotImplementedError("each broker's test module provides it")

    async def test_poison_is_dead_lettered_in_order_and_the_rest_applied(
        self, loop_broker: LoopBroker
    ) -> None:
        handler = RecordingHandler()
        consumer = loop_broker.consumer(handler, loop_broker.dead_letters())
        for value in (b"a", b"poison-1", b"b", b"poison-2"):
            await loop_broker.send(value)
        async with running(consumer):
            await until(lambda: committed(consumer) == 4, "all four records committed")
        assert handler.applied == [b"a", b"b"]
        assert await loop_broker.dead_lettered(2) == [b"poison-1", b"poison-2"]
        assert (
            sample(loop_broker, "kafka_consumer_messages_dead_lettered_total", reason="poison") == 2
        )
        assert (
            sample(loop_broker, "kafka_consumer_messages_processed_total", outcome="applied") == 2
        )
        assert sample(loop_broker, "kafka_consumer_batch_failures_total") == 0

    async def test_a_transient_failure_rewinds_backs_off_and_retries(
        self, loop_broker: LoopBroker
    ) -> None:
        handler = RecordingHandler(failures=2)
        consumer = loop_broker.consumer(handler, loop_broker.dead_letters())
        for value in (b"a", b"b", b"c"):
            await loop_broker.send(value)
        async with running(consumer):
            await until(lambda: committed(consumer) == 3, "all three records committed")
        # Rewound to the first unapplied record each time: nothing skipped, nothing doubled.
        assert handler.applied == [b"a", b"b", b"c"]
        assert handler.attempts >= 3
        assert sample(loop_broker, "kafka_consumer_batch_failures_total") == 2
        assert consumer.progress.consecutive_failures == 0
        assert consumer.progress.failing_since is None

    async def test_the_offset_is_committed_only_after_the_dead_letters_are_published(
        self, loop_broker: LoopBroker
    ) -> None:
        handler = RecordingHandler()
        consumer_box: list[Consumer] = []
        dead_letters = FailingDeadLetters(
            loop_broker.dead_letters(), failures=2, committed=lambda: committed(consumer_box[0])
        )
        consumer = loop_broker.consumer(handler, dead_letters)
        consumer_box.append(consumer)
        for value in (b"poison-1", b"a"):
            await loop_broker.send(value)
        async with running(consumer):
            await until(lambda: committed(consumer) == 2, "both records committed")
        # Every attempt, the failed ones and the one that succeeded, ran before any commit.
        assert dead_letters.committed_at_attempts == [None, None, None]
        assert await loop_broker.dead_lettered(1) == [b"poison-1"]
        assert handler.applied == [b"a"]
        assert sample(loop_broker, "kafka_consumer_batch_failures_total") == 2
