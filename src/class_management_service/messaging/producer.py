"""The one Kafka producer of the process, started on first use, and sized to the broker.

Starting lazily (and retrying on the next use) means a broker that is down at boot delays
publishing instead of preventing the HTTP API from starting. The producer itself, and why it
measures records before sending them, is :mod:`~class_management_service.messaging.sized_producer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from class_management_service.messaging.topic_limits import TopicLimits
from class_management_service.settings import Settings

if TYPE_CHECKING:
    from class_management_service.messaging.sized_producer import SizedProducer

logger = logging.getLogger(__name__)


class SharedProducer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: SizedProducer | None = None
        self._lock = asyncio.Lock()
        self._limits = TopicLimits(settings)

    async def get(self) -> SizedProducer:
        if self._producer is not None and not self._producer.unusable():
            return self._producer
        async with self._lock:
            if self._producer is not None and self._producer.unusable():
                dead, self._producer = self._producer, None
                logger.warning(
                    "the Kafka producer can no longer send; starting a new producer",
                    extra={"out_of_sequence": dead.out_of_sequence},
                )
                with contextlib.suppress(Exception):
                    await dead.stop()
            if self._producer is None:
                # Imported with the first producer: aiokafka is ~0.03 s of CPU that a process
                # which never publishes (an app built in-process over a database) does not load.
                from class_management_service.messaging.sized_producer import (
                    COMPRESSION,
                    SizedProducer,
                )

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
