"""The whole service in-process on this test's topics, for the association flows end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI

from class_management_service.bootstrap import build_app
from class_management_service.settings import Settings

StartApp = Callable[..., AbstractAsyncContextManager[FastAPI]]


@pytest.fixture
def start_app(
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    redis_url: str,
    unique_name: Callable[[str], str],
) -> StartApp:
    """Runs the HTTP API, consumer and outbox relay (plus ``overrides``) until the block ends."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[FastAPI]:
        settings = make_settings(
            kafka_bootstrap_servers=kafka_bootstrap,
            redis_url=redis_url,
            run_consumer=True,
            run_outbox_relay=True,
            author_matches_topic=unique_name("matches"),
            dead_letter_topic=unique_name("matches.dlq"),
            consumer_group_id=unique_name("cms"),
            outbox_poll_interval_seconds=0.2,
            **overrides,
        )
        app = build_app(settings)
        async with app.router.lifespan_context(app):
            yield app

    return start
