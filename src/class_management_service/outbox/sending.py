"""Publishing claimed rows to Kafka: each stored envelope goes out unchanged (same event_id,
same timestamp, stored headers, key = ``message_key``) on the shared idempotent producer
(acks=all), all of a claim in flight at once, bounded by one deadline."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, OutOfOrderSequenceNumber

from class_management_service.outbox.claims import ClaimedEvent


class ProducerSource(Protocol):
    """Where the relay gets its Kafka producer (``SharedProducer`` in the service)."""

    async def get(self) -> Any: ...


def is_transient(exc: BaseException) -> bool:
    """A broker-side failure (outage, leader election) rather than the message's fault."""
    # OutOfOrderSequenceNumber: the producer's state is broken, not the message; the shared
    # producer replaces itself on the next use (messaging/producer.py).
    return bool(getattr(exc, "retriable", False)) or isinstance(
        exc, KafkaConnectionError | KafkaTimeoutError | TimeoutError | OutOfOrderSequenceNumber
    )


async def publish(
    producer: ProducerSource, events: Sequence[ClaimedEvent], *, within: float
) -> dict[uuid.UUID, BaseException | None]:
    """Send every event; each one's outcome (None: acknowledged by the broker)."""
    outcomes: dict[uuid.UUID, BaseException | None] = {}
    in_flight: dict[asyncio.Future[Any], ClaimedEvent] = {}
    deadline = time.monotonic() + within
    try:
        async with asyncio.timeout(within):
            kafka = await producer.get()
            for event in events:
                try:
                    future = await kafka.send(
                        event.topic,
                        value=json.dumps(
                            event.envelope, separators=(",", ":"), ensure_ascii=False
                        ).encode(),
                        key=event.message_key.encode(),
                        headers=[
                            (name, str(value).encode()) for name, value in event.headers.items()
                        ],
                    )
                except Exception as exc:  # a rejected message: its own failure
                    outcomes[event.id] = exc
                else:
                    in_flight[future] = event
    except Exception as exc:  # timed out, or no producer at all (broker down at start)
        queued = {event.id for event in in_flight.values()}
        for event in events:
            if event.id not in outcomes and event.id not in queued:
                outcomes[event.id] = exc
    if in_flight:
        done, pending = await asyncio.wait(
            in_flight, timeout=max(deadline - time.monotonic(), 0.01)
        )
        for future in done:
            outcomes[in_flight[future].id] = future.exception()
        for future in pending:
            # It may still be delivered; a re-send carries the same event_id.
            outcomes[in_flight[future].id] = TimeoutError("no broker acknowledgement in time")
    return outcomes
