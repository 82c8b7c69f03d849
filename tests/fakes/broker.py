"""An in-memory broker for the consumer loop: partitioned logs, one group's offsets, rebalances.

``FakeBroker.client`` is a ``BrokerClientFactory``: the consumer loop drives the fake exactly as
it drives aiokafka (``messaging/broker_client.py``), so its logic runs without a broker. Faults
are injected by the test: failed commits, failed dead-letter publishing, a revoked partition.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaConnectionError

from class_management_service.messaging.broker_client import RebalanceListener
from class_management_service.messaging.dead_letter import DeadLetter
from class_management_service.settings import ConsumerSettings


@dataclass(frozen=True, slots=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = 0


class FakeBroker:
    def __init__(self) -> None:
        self._logs: dict[TopicPartition, list[FakeRecord]] = {}
        #: Committed offsets by (group, partition).
        self.committed: dict[tuple[str, TopicPartition], int] = {}
        #: How many of the next commits fail as if the broker were unreachable.
        self.failing_commits = 0
        self._arrived = asyncio.Condition()
        self.clients: list[FakeBrokerClient] = []

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        for partition in range(partitions):
            self._logs.setdefault(TopicPartition(topic, partition), [])

    def partitions(self, topic: str) -> list[TopicPartition]:
        return sorted(tp for tp in self._logs if tp.topic == topic)

    def log(self, tp: TopicPartition) -> list[FakeRecord]:
        return self._logs[tp]

    async def append(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int = 0,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> FakeRecord:
        self.create_topic(topic, partition + 1)
        log = self._logs[TopicPartition(topic, partition)]
        record = FakeRecord(topic, partition, len(log), key, value, tuple(headers))
        log.append(record)
        async with self._arrived:
            self._arrived.notify_all()
        return record

    async def wait_for_records(self, timeout_ms: int) -> None:
        """What a fetch does with nothing to return: wait for a record, at most ``timeout_ms``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_ms / 1000), self._arrived:
                await self._arrived.wait()

    def client(self, settings: ConsumerSettings) -> FakeBrokerClient:
        client = FakeBrokerClient(self, settings)
        self.clients.append(client)
        return client


class FakeBrokerClient:
    """One group member: it is assigned every partition of its topic when it starts."""

    def __init__(self, broker: FakeBroker, settings: ConsumerSettings) -> None:
        self._broker = broker
        self._group = settings.group_id
        self._topics: list[str] = []
        self._listener: RebalanceListener | None = None
        self._positions: dict[TopicPartition, int] = {}

    def subscribe(self, topics: Sequence[str], *, listener: RebalanceListener) -> None:
        self._topics, self._listener = list(topics), listener

    async def start(self) -> None:
        assigned = {tp for topic in self._topics for tp in self._broker.partitions(topic)}
        for tp in assigned:
            self._positions[tp] = self._broker.committed.get((self._group, tp), 0)
        assert self._listener is not None
        await self._listener.on_partitions_assigned(set(assigned))

    async def stop(self) -> None:
        self._positions.clear()

    async def revoke(self, tps: set[TopicPartition]) -> None:
        """A rebalance takes ``tps`` away (the listener runs first, as in aiokafka)."""
        assert self._listener is not None
        await self._listener.on_partitions_revoked(set(tps))
        for tp in tps:
            self._positions.pop(tp, None)

    async def getmany(
        self, *, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[FakeRecord]]:
        batches = self._fetch(max_records)
        if not batches:
            await self._broker.wait_for_records(timeout_ms)
            batches = self._fetch(max_records)
        return batches

    def _fetch(self, max_records: int) -> dict[TopicPartition, list[FakeRecord]]:
        batches: dict[TopicPartition, list[FakeRecord]] = {}
        for tp, position in sorted(self._positions.items()):
            records = self._broker.log(tp)[position : position + max_records]
            max_records -= len(records)
            if records:
                batches[tp] = records
                self._positions[tp] = records[-1].offset + 1
        return batches

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if partition not in self._positions:
            raise IllegalStateError(f"{partition} is not assigned")
        self._positions[partition] = offset

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self._broker.failing_commits:
            self._broker.failing_commits -= 1
            raise KafkaConnectionError("fake broker: commit failed")
        for tp, offset in offsets.items():
            self._broker.committed[(self._group, tp)] = offset

    def highwater(self, partition: TopicPartition) -> int | None:
        return len(self._broker.log(partition))

    async def position(self, partition: TopicPartition) -> int:
        return self._positions[partition]


class FakeDeadLetters:
    """A ``DeadLetterSink`` that appends the original records to the dead-letter topic."""

    def __init__(self, broker: FakeBroker, topic: str) -> None:
        self._broker = broker
        self.topic = topic

    async def publish(self, letters: Sequence[DeadLetter], *, group_id: str) -> None:
        for letter in letters:
            await self._broker.append(
                self.topic,
                letter.record.value,
                key=letter.record.key,
                headers=[("dlq_reason", letter.reason.encode())],
            )
