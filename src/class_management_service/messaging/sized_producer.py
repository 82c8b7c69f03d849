"""The producer that measures a record before sending it, so the broker never refuses a batch.

Every batch is gzip-compressed (the platform's JSON shrinks ~10x; gzip needs no extra package,
unlike lz4/zstd, and every Kafka client reads it), and ``max_request_size`` bounds only the
*uncompressed* record, so a 1 MB ``StudentAssociationsConfirmedV1`` goes out as ~100 kB. What the
broker limits is the compressed batch (the topic's ``max.message.bytes``), and a batch it rejects
as too large is not a harmless error: the idempotent producer has already given the batch its
sequence number, so every later send to that partition fails with ``OutOfOrderSequenceNumber``.
:class:`SizedProducer` therefore never sends a record the topic would refuse: a big record is
measured as the compressed batch it will become and refused up front with
:class:`MessageSizeTooLargeError` (the caller decides: the dead-letter publisher stores it in
PostgreSQL, the outbox relay counts a failed attempt).

Imported by :class:`~class_management_service.messaging.producer.SharedProducer` when it starts
its first producer: a process that never publishes (an app built in-process over a database)
does not load aiokafka for it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, OutOfOrderSequenceNumber
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

if TYPE_CHECKING:
    from class_management_service.messaging.topic_limits import TopicLimits

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


class SizedProducer(AIOKafkaProducer):  # type: ignore[misc]  # aiokafka ships no types
    """An ``AIOKafkaProducer`` that refuses, before sending, a record the topic would reject."""

    def __init__(self, *, limits: TopicLimits, **options: Any) -> None:
        super().__init__(**options)
        self._limits = limits
        # Set once the broker refused a batch's sequence number (see :meth:`unusable`).
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

    def unusable(self) -> bool:
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
        task = self._sender.sender_task
        return self.out_of_sequence or (task is not None and bool(task.done()))
