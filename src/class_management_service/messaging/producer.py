"""The one Kafka producer of the process, started on first use, and sized to the broker.

Starting lazily (and retrying on the next use) means a broker that is down at boot delays
publishing instead of preventing the HTTP API from starting.

Message size: every batch is gzip-compressed (the platform's JSON shrinks ~10x; gzip needs no
extra package, unlike lz4/zstd, and every Kafka client reads it), and ``max_request_size`` bounds
only the *uncompressed* record, so a 1 MB ``StudentAssociationsConfirmedV1`` goes out as ~100 kB.
What the broker limits is the compressed batch (the topic's ``max.message.bytes``), and a batch
it rejects as too large is not a harmless error: the idempotent producer has already given the
batch its sequence number, so every later send to that partition fails with
``OutOfOrderSequenceNumber``. :class:`SizedProducer` therefore never sends a record the topic
would refuse: a big record is measured as the compressed batch it will become and refused
up front with :class:`MessageSizeTooLargeError` (the caller decides: the dead-letter publisher
stores it in PostgreSQL, the outbox relay counts a failed attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError, OutOfOrderSequenceNumber
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from class_management_service.settings import Settings

logger = logging.getLogger(__name__)

COMPRESSION = "gzip"
# No broker is configured below this; records up to it skip the size check entirely.
SMALL_RECORD_BYTES = 64 * 1024
# A record whose uncompressed estimate plus gzip's worst-case growth (stored blocks: a few
# bytes per 16 kB) and the batch framing stays under the limit fits without measuring.
_GZIP_GROWTH_DIVISOR = 100
_BATCH_FRAMING_BYTES = 1024


def compressed_batch_bytes(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> int:
    """The exact size of the gzip-compressed one-record batch the broker would receive."""
    builder = DefaultRecordBatchBuilder(
        2,
        DefaultRecordBatch.CODEC_GZIP,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=0,
        batch_size=2**31 - 1,
    )
    builder.append(0, timestamp=None, key=key, value=value, headers=headers)
    return len(builder.build())


class TopicLimits:
    """Each topic's ``max.message.bytes`` as the broker reports it, read once per topic.

    Until it can be read (broker down, topic not created yet) ``fallback`` (Kafka's default)
    stands in and the lookup is tried again next time.
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


class SizedProducer(AIOKafkaProducer):  # type: ignore[misc]  # aiokafka ships no types
    """An ``AIOKafkaProducer`` that refuses, before sending, a record the topic would reject."""

    def __init__(self, *, limits: TopicLimits, **options: Any) -> None:
        super().__init__(**options)
        self._limits = limits
        # Set once the broker refused a batch's sequence number (see :func:`_unusable`).
        self.out_of_sequence = False

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        await self.check_size(topic, key, value, headers or [])
        future: asyncio.Future[Any] = await super().send(
            topic,
            value=value,
            key=key,
            partition=partition,
            timestamp_ms=timestamp_ms,
            headers=headers,
        )
        future.add_done_callback(self._note_outcome)
        return future

    def _note_outcome(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and isinstance(future.exception(), OutOfOrderSequenceNumber):
            self.out_of_sequence = True

    async def check_size(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        """Raise :class:`MessageSizeTooLargeError` if the record cannot go to ``topic``."""
        estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        if estimate <= SMALL_RECORD_BYTES:
            return
        limit = await self._limits.limit(topic)
        if estimate + estimate // _GZIP_GROWTH_DIVISOR + _BATCH_FRAMING_BYTES <= limit:
            return
        # Compressing is CPU work, worth it only for records near or above the limit.
        size = await asyncio.to_thread(compressed_batch_bytes, key, value, headers)
        if size > limit:
            raise MessageSizeTooLargeError(
                f"record of {estimate} bytes is {size} bytes compressed; "
                f"topic {topic} accepts at most {limit} (max.message.bytes)"
            )


def _unusable(producer: SizedProducer) -> bool:
    """Whether only a new producer (a new producer id, sequence numbers from 0) can send again.

    Two ways the idempotent producer breaks for good:

    - the broker answered ``OutOfOrderSequenceNumber``: a batch that had been given a sequence
      number never reached it. Seen with a 5 s broker restart: the batch in flight at the stop
      came back ``NotLeaderForPartition`` and was queued again, and aiokafka then failed it
      (``LeaderNotAvailable``: older than ``request_timeout_ms``, the partition's leader not
      known yet). aiokafka 0.14 fails only the refused batch and keeps its sender running, so
      every later batch to the partition is refused the same way for as long as this producer
      lives; the relay, rightly treating the error as not the message's fault, retried for ever;
    - the background sender stopped on a fatal error; every later send then fails with it.

    Not replaced on the failed batch itself (any failed batch of the idempotent producer leaves
    such a gap): at that moment the broker may still be down, and stopping the old producer
    waits for its other batches. ``OutOfOrderSequenceNumber`` is the broker answering, so the
    old producer's remaining batches are delivered or refused at once.
    """
    task = producer._sender.sender_task
    return producer.out_of_sequence or (task is not None and bool(task.done()))


class SharedProducer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: SizedProducer | None = None
        self._lock = asyncio.Lock()
        self._limits = TopicLimits(settings)

    async def get(self) -> SizedProducer:
        if self._producer is not None and not _unusable(self._producer):
            return self._producer
        async with self._lock:
            if self._producer is not None and _unusable(self._producer):
                dead, self._producer = self._producer, None
                logger.warning(
                    "the Kafka producer can no longer send; starting a new producer",
                    extra={"out_of_sequence": dead.out_of_sequence},
                )
                with contextlib.suppress(Exception):
                    await dead.stop()
            if self._producer is None:
                producer = SizedProducer(
                    limits=self._limits,
                    bootstrap_servers=self._settings.kafka_bootstrap_servers,
                    # Idempotent + acks=all: broker-side retries never write a message twice.
                    enable_idempotence=True,
                    acks="all",
                    request_timeout_ms=self._settings.producer_request_timeout_ms,
                    linger_ms=5,
                    compression_type=COMPRESSION,
                    max_request_size=self._settings.producer_max_request_size_bytes,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
        return self._producer

    async def stop(self) -> None:
        """Flush what is buffered, then close."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.flush()
            await producer.stop()
