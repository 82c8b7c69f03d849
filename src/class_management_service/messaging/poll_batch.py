"""One partition's records of one poll on their way through the consumer (:mod:`.consumer`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic

from aiokafka import TopicPartition

from class_management_service.messaging.batch import (
    BatchHandler,
    Inbound,
    P,
    PoisonMessage,
    Record,
    T,
)
from class_management_service.messaging.cooperative import cooperatively
from class_management_service.messaging.dead_letter import DeadLetter


@dataclass
class PollBatch(Generic[T, P]):
    """One partition's records of one poll, decoded (and prepared) and waiting to be applied."""

    tp: TopicPartition
    records: Sequence[Record]
    batch: list[Inbound[T]] = field(default_factory=list)
    poison: list[DeadLetter] = field(default_factory=list)
    plan: P | None = None
    #: The records of ``batch`` by position, kept once the decoded messages are let go.
    batch_records: list[Record] = field(default_factory=list)


async def decode(
    handler: BatchHandler[T, P], tp: TopicPartition, records: Sequence[Record]
) -> PollBatch[T, P]:
    """Decode (pure): good messages for the handler, undecodable ones for the DLQ. The event
    loop gets a turn every few records, so the batch being applied meanwhile keeps going."""
    polled: PollBatch[T, P] = PollBatch(tp, records)
    async for record in cooperatively(records):
        try:
            polled.batch.append(Inbound(record, handler.decode(record)))
        except PoisonMessage as exc:
            polled.poison.append(DeadLetter(record, exc.reason, exc.error))
    return polled
