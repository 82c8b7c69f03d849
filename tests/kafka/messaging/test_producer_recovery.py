"""The shared producer recovers from a dead sender (found by the reliability suite).

When aiokafka's background sender stops on a fatal error every later send fails with that
error. The outbox relay used to count those failures as attempts until its events became
``failed``: publishing stopped until a restart. (aiokafka 0.14 does not stop the sender on the
broker's ``OutOfOrderSequenceNumber``, the error this test makes it stop with; that case, where
only the refused batches fail, is tests/kafka/outbox/test_relay.py's
``test_the_relay_publishes_again_after_the_broker_lost_a_numbered_batch``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging.producer import SharedProducer
from class_management_service.outbox.writer import add_outbox_event
from class_management_service.settings import Settings
from tests.kafka.topics import consume, make_relay


async def _stop_sender_as_the_broker_would(producer: object) -> None:
    """End the producer's sender task with a fatal error, as aiokafka does on one."""
    sender = producer._sender  # type: ignore[attr-defined]
    sender.sender_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender.sender_task

    async def fatal() -> None:
        raise OutOfOrderSequenceNumber()

    failed = asyncio.ensure_future(fatal())
    with contextlib.suppress(OutOfOrderSequenceNumber):
        await failed
    sender._sender_task = failed
    # What aiokafka's done-callback does with the sender's error: every later send fails.
    sender._message_accumulator.fail_all(failed.exception())


async def test_the_relay_publishes_again_after_the_producers_sender_died(
    make_settings: Callable[..., Settings],
    session_factory: async_sessionmaker[AsyncSession],
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> None:
    settings = make_settings(kafka_bootstrap_servers=kafka_bootstrap)
    topic = unique_name("test.producer.recovery")
    shared = SharedProducer(settings)
    try:
        dead = await shared.get()
        await _stop_sender_as_the_broker_would(dead)
        with pytest.raises(OutOfOrderSequenceNumber):
            await dead.send(topic, value=b"{}")

        async with session_factory() as session:
            event_id = add_outbox_event(
                session,
                topic=topic,
                aggregate_type="test",
                aggregate_id="a-1",
                data={},
                correlation_id=uuid.uuid4(),
            ).event_id
            await session.commit()
        relay = make_relay(session_factory, shared, settings)
        result = await relay.run_once()
        assert (result.published, result.failed) == (1, 0), result.errors
        assert await shared.get() is not dead
    finally:
        await shared.stop()
    (message,) = await consume(kafka_bootstrap, topic, 1)
    assert dict(message.headers)["event_id"].decode() == str(event_id)
