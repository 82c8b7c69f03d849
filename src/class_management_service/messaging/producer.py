"""The one Kafka producer of the process, started on first use.

Starting lazily (and retrying on the next use) means a broker that is down at boot delays
publishing instead of preventing the HTTP API from starting.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from class_management_service.settings import Settings


class SharedProducer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
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
