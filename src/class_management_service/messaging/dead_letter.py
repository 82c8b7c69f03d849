"""Publishing poison messages to the dead-letter topic.

A dead letter is the original record, unchanged (same key, value and headers), plus headers that
say why it was set aside and where it came from, so an operator can inspect, fix and replay it:

``dlq_reason``              short code (``invalid_json``, ``malformed_id``, ``unknown_class``...)
``dlq_error``               human-readable detail (truncated)
``dlq_original_topic``      where it was consumed from
``dlq_original_partition``
``dlq_original_offset``
``dlq_original_timestamp``  the original record's timestamp (ms)
``dlq_consumer_group``      the consumer group that gave up on it
``dlq_service``             this service
``dlq_failed_at``           ISO-8601 UTC time of the decision

A letter the dead-letter topic cannot take (the producer refuses it as too large for the topic,
even compressed) goes to the ``dead_letters`` table instead (:mod:`.dead_letter_store`), so a
poison record of any size the broker accepted is set aside and never blocks its partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from class_management_service.messaging.producer import SharedProducer

if TYPE_CHECKING:
    from class_management_service.messaging.dead_letter_store import DeadLetterStore

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000
# The headers a dead letter gets on top of the record's own (see headers_for); a replay
# (dead_letter_replay.py) strips them again and counts itself in REPLAY_COUNT_HEADER.
DEAD_LETTER_HEADERS = frozenset(
    {
        "dlq_reason",
        "dlq_error",
        "dlq_original_topic",
        "dlq_original_partition",
        "dlq_original_offset",
        "dlq_original_timestamp",
        "dlq_consumer_group",
        "dlq_service",
        "dlq_failed_at",
    }
)
REPLAY_COUNT_HEADER = "dlq_replay_count"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: Any  # aiokafka.ConsumerRecord[bytes, bytes]
    reason: str
    error: str


class DeadLetterSink(Protocol):
    async def publish(self, letters: Sequence[DeadLetter], *, group_id: str) -> None:
        """Set every letter aside durably, or raise (the caller then commits nothing)."""
        ...


class DeadLetterPublisher:
    def __init__(
        self,
        producer: SharedProducer,
        topic: str,
        *,
        service_name: str,
        store: DeadLetterStore,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self._service_name = service_name
        self._store = store

    def headers_for(self, letter: DeadLetter, *, group_id: str) -> list[tuple[str, bytes]]:
        record = letter.record
        added = {
            "dlq_reason": letter.reason,
            "dlq_error": letter.error[:MAX_ERROR_CHARS],
            "dlq_original_topic": record.topic,
            "dlq_original_partition": str(record.partition),
            "dlq_original_offset": str(record.offset),
            "dlq_original_timestamp": str(record.timestamp),
            "dlq_consumer_group": group_id,
            "dlq_service": self._service_name,
            "dlq_failed_at": datetime.now(UTC).isoformat(),
        }
        original = [(str(key), bytes(value or b"")) for key, value in (record.headers or ())]
        return original + [(key, value.encode()) for key, value in added.items()]

    async def publish(self, letters: Sequence[DeadLetter], *, group_id: str) -> None:
        """Publish every letter and wait until the broker has acknowledged all of them.

        Raises on failure, so the caller does not commit past a record that is neither
        processed nor safely dead-lettered (a retry may publish a letter twice, never zero times).
        """
        if not letters:
            return
        # Here, not at the top: the producer imports aiokafka when it starts (producer.py).
        from aiokafka.errors import MessageSizeTooLargeError

        producer = await self._producer.get()
        deliveries, sent = [], []
        too_large: list[tuple[DeadLetter, str]] = []
        for letter in letters:
            try:
                deliveries.append(
                    await producer.send(
                        self.topic,
                        value=letter.record.value,
                        key=letter.record.key,
                        headers=self.headers_for(letter, group_id=group_id),
                    )
                )
                sent.append(letter)
            except MessageSizeTooLargeError as exc:
                too_large.append((letter, str(exc)))
        await asyncio.gather(*deliveries)
        for letter in sent:
            self._log(letter, self.topic)
        await self._store.add([letter for letter, _ in too_large], group_id=group_id)
        for letter, why in too_large:
            self._log(letter, "dead_letters table", why)

    @staticmethod
    def _log(letter: DeadLetter, where: str, why: str | None = None) -> None:
        logger.warning(
            "message dead-lettered",
            extra={
                "dlq": where,
                "reason": letter.reason,
                "error": letter.error[:500],
                "original_topic": letter.record.topic,
                "original_partition": letter.record.partition,
                "original_offset": letter.record.offset,
                **({"not_in_topic_because": why} if why else {}),
            },
        )
