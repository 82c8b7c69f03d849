"""The one Kafka producer of the process, started on first use.

Starting lazily (and retrying on the next use) means a broker that is down at boot delays
publishing instead of preventing the HTTP API from starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer

from class_management_service.settings import Settings

logger = logging.getLogger(__name__)


def _sender_died(producer: AIOKafkaProducer) -> bool:
    """aiokafka's background sender stops for good on a fatal error (``OutOfOrderSequenceNumber``
    when a broker restart lost an in-flight batch of the idempotent producer); every later send
    then fails with that error. Only a new producer (a new producer id) sends again."""
    task = producer._sender.sender_task
    return task is not None and bool(task.done())


class SharedProducer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AIOKafkaProducer:
        if self._producer is not None and not _sender_died(self._producer):
            return self._producer
        async with self._lock:
            if self._producer is not None and _sender_died(self._producer):
                dead, self._producer = self._producer, None
                logger.warning("the Kafka producer's sender stopped; starting a new producer")
                with contextlib.suppress(Exception):
                    await dead.stop()
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._settings.kafka_bootstrap_servers,
                    # Idempotent + acks=all: broker-side retries never write a message twice.
                    enable_idempotence=True,
                    acks="all",
                    request_timeout_ms=self._settings.producer_request_timeout_ms,
                    linger_ms=5,
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
