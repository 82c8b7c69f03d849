"""The composition root: builds every dependency, worker and metric family from settings, and
wires the app together.

Nothing is created at import time; this is the only place that knows how the pieces fit, so
tests and replicas can build as many independent apps as they like.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from class_management_service import db
from class_management_service.associations.routes import router as associations_router
from class_management_service.associations.timeout_monitor import TimeoutMonitor
from class_management_service.classes.routes import router as classes_router
from class_management_service.container import Container
from class_management_service.http.docs_ui import install_docs
from class_management_service.http.errors import install_error_handlers
from class_management_service.http.middleware import RequestContextMiddleware
from class_management_service.http.openapi import install_links
from class_management_service.internal.routes import router as internal_router
from class_management_service.messaging.dead_letter_routes import (
    replays_router as dead_letter_replays_router,
)
from class_management_service.messaging.dead_letter_routes import router as dead_letters_router
from class_management_service.messaging.producer import SharedProducer
from class_management_service.observability.health import (
    DatabaseProbe,
    kafka_broker_check,
    redis_check,
)
from class_management_service.observability.metrics import Metrics
from class_management_service.observability.routes import router as operations_router
from class_management_service.reads import ReadOnlyDatabase
from class_management_service.settings import (
    PREFIX,
    SHARED_INTERNAL_API_KEY,
    ConsumerSettings,
    Settings,
)
from class_management_service.students.rights_routes import router as student_rights_router
from class_management_service.students.routes import router as students_router
from class_management_service.workers.supervisor import Supervisor, Worker

if TYPE_CHECKING:
    from class_management_service.associations.author_match_handler import AuthorMatchHandler
    from class_management_service.messaging.batch import BatchHandler, P, T
    from class_management_service.messaging.consumer import KafkaBatchConsumer
    from class_management_service.retention.worker import RetentionWorker

logger = logging.getLogger(__name__)

# Matched in this order, route by route (each candidate costs FastAPI ~2 us): the routers of
# the hot GET routes (students, classes, the roster in internal_router) come first.
API_ROUTERS = (
    # /v1/classes/students/... must be matched before /v1/classes/{class_id}.
    students_router,
    classes_router,
    internal_router,
    operations_router,
    student_rights_router,
    associations_router,
    dead_letters_router,
    dead_letter_replays_router,
)


def build_container(settings: Settings) -> Container:
    engine = db.create_engine(settings)
    container = Container(
        settings=settings,
        engine=engine,
        session_factory=db.create_session_factory(engine),
        read_only_database=ReadOnlyDatabase(settings),
        producer=SharedProducer(settings),
        metrics=Metrics(),
        database_probe=DatabaseProbe(settings),
    )
    container.health_checks.update(
        database=container.database_probe.check,
        redis=redis_check(lambda: container.redis),
        kafka=kafka_broker_check(container.producer),
    )
    container.supervisor = Supervisor(build_workers(container))
    return container


def build_workers(container: Container) -> list[Worker]:
    """The background workers this instance runs (each can be switched off in settings).

    The consumer's, the relay's and the retention worker's modules are imported only when the
    worker is built: they load aiokafka and redis (~0.07 s of CPU) that an app without them
    (the tests' in-process apps, a replica serving HTTP only) never uses.
    """
    workers: list[Worker] = []
    if container.settings.run_consumer:
        workers.append(
            consumer_worker(
                container, container.settings.author_match_consumer, author_match_handler(container)
            )
        )
    if container.settings.run_outbox_relay:
        from class_management_service.outbox.relay import OutboxRelay

        workers.append(
            OutboxRelay(
                session_factory=container.session_factory,
                producer=container.producer,
                settings=container.settings,
                metrics=container.metrics.outbox,
            )
        )
    if container.settings.run_timeout_monitor:
        workers.append(
            TimeoutMonitor(
                session_factory=container.session_factory,
                settings=container.settings,
                metrics=container.metrics.timeout,
            )
        )
    if container.settings.run_retention:
        workers.append(retention_worker(container))
    return workers


def author_match_handler(container: Container) -> AuthorMatchHandler:
    from class_management_service.associations.author_match_handler import AuthorMatchHandler
    from class_management_service.associations.auto_confirm import AutoConfirmPolicy
    from class_management_service.associations.ingestion import AuthorMatchIngestion
    from class_management_service.idempotency import IdempotencyCache

    settings = container.settings
    cache = IdempotencyCache(
        container.redis,
        in_flight_ttl_seconds=settings.idempotency_in_flight_ttl_seconds,
        completed_ttl_seconds=settings.idempotency_completed_ttl_seconds,
    )
    ingestion = AuthorMatchIngestion(
        container.session_factory, AutoConfirmPolicy.from_settings(settings)
    )
    return AuthorMatchHandler(ingestion, cache)


def retention_worker(container: Container) -> RetentionWorker:
    """The retention worker, asking the container's broker about the consumed topics, in
    /healthz. A topic missing here is still checked once the ledger holds one of its events;
    listed, it is checked from start-up on."""
    from class_management_service.retention.horizon import BrokerRedelivery
    from class_management_service.retention.worker import RetentionWorker

    settings = container.settings
    worker = RetentionWorker(
        session_factory=container.session_factory,
        settings=settings,
        metrics=container.metrics.retention,
        redelivery=BrokerRedelivery(
            settings.kafka_bootstrap_servers,
            timeout_seconds=settings.producer_request_timeout_ms / 1000,
        ),
        consumed_topics=[settings.author_match_consumer.topic],
    )
    container.health_checks["retention"] = worker.health_check()
    return worker


def consumer_worker(
    container: Container, settings: ConsumerSettings, handler: BatchHandler[T, P]
) -> KafkaBatchConsumer[T, P]:
    """A consumer worker on the container's broker, database and metrics, in /healthz."""
    from class_management_service.messaging.registration import build_consumer

    worker = build_consumer(
        settings,
        handler,
        producer=container.producer,
        session_factory=container.session_factory,
        metrics=container.metrics.consumer,
        service_name=container.settings.service_name,
    )
    container.health_checks[settings.health_check] = worker.health_check()
    return worker


def build_app(settings: Settings) -> FastAPI:
    container = build_container(settings)
    supervisor = container.supervisor

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        supervisor.start()
        # Move start-up's long-lived objects (modules, ORM mappers, routes) out of the cyclic GC's
        # reach: otherwise every full collection walks them again, ~0.1 s pauses under load.
        # No gc.collect() first: it finds a dozen objects and costs ~90 ms of CPU, ~8 % of a
        # cold start.
        gc.freeze()
        logger.info("service started", extra={"workers": [w.name for w in supervisor.workers]})
        try:
            yield
        finally:
            # Order matters: stop consuming/relaying first, then flush what they produced.
            await supervisor.stop()
            await container.close()
            logger.info("service stopped")

    app = FastAPI(
        title="Class Management Service",
        version="1.0.0",
        description=(
            "Authoritative store of teachers' classes, courses and students, and of the "
            "essay-to-student associations of the HuleEdu platform."
        ),
        lifespan=lifespan,
        # http/docs_ui.py serves the documents' pages from local assets instead.
        docs_url=None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry instrumentation is off: the service exports its metrics on
        # /metrics and carries the caller's trace context itself (observability/), and only the
        # OpenTelemetry API is installed, so it never had a provider to report to. Left on, it
        # asks the API for its three global providers on every request (~4-5 us of CPU).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # The only thing the app holds: routes reach it through http/deps.py.
    app.state.container = container
    if settings.internal_api_key is None:
        logger.warning(
            "no internal API key configured (%s or %sINTERNAL_API_KEY): the internal routes "
            "refuse every caller",
            SHARED_INTERNAL_API_KEY,
            PREFIX,
        )

    install_error_handlers(app)
    install_links(app)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=container.metrics.http,
        max_body_bytes=settings.max_request_body_bytes,
        body_timeout_seconds=settings.request_body_timeout_seconds,
        access_log=settings.access_log,
    )
    # The routers' own routes are added, not the routers through include_router: FastAPI keeps an
    # included router nested and builds each of its routes again for every app (dependency and
    # response fields, pydantic TypeAdapters: ~60 ms of CPU on an app's first requests), while
    # the routes a router holds were built once at import with its prefix, tags and responses,
    # which is all an inclusion without options adds. Every app of the process shares them. What
    # else include_router does is not needed: these routers have no lifespan or event handlers
    # (tests/unit/test_app_routes.py), and app.dependency_overrides is not used.
    for router in API_ROUTERS:
        app.router.routes.extend(router.routes)
    # After the API: the documents' pages and assets (/docs, /asyncapi...) would otherwise be
    # candidates of every API request; no path of theirs overlaps the API's.
    install_docs(app, settings)
    return app
