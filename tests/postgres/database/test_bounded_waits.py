"""Nothing waits on the database without a bound (issue 12 rows 2, 9 and 10).

Another connection holding a lock, or every pooled connection being busy, makes a request
answer 503 (retryable, the contract's error body) within the configured waits instead of
hanging; /healthz keeps answering on a connection of its own; the workers back off instead of
crashing; a race lost against a delete answers 409; the service's commits are durable
(``synchronous_commit=on``) whatever the server's default.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service import db
from class_management_service.bootstrap import build_app
from class_management_service.container import Container
from class_management_service.db import asyncpg_dsn
from class_management_service.messaging.producer import SharedProducer
from class_management_service.outbox.relay import connect_listener
from class_management_service.settings import Settings
from class_management_service.workers import supervisor
from tests.factories import seed_batch, timeout_monitor
from tests.http_helpers import assert_error, create_class, teacher
from tests.kafka.topics import make_relay
from tests.waiting import cancel_and_wait, wait_for

T = TypeVar("T")
MakeSettings = Callable[..., Settings]

# Far beyond every configured wait here (fractions of a second): only a request that would
# hang forever (the behaviour before the bounded waits) runs into it.
HANG = 60.0


async def _without_hanging(awaitable: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(awaitable, HANG)
    except TimeoutError:
        pytest.fail(f"still waiting after {HANG:g} s: the wait is unbounded")


@contextlib.asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    app = build_app(settings)
    container: Container = app.state.container
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client, container
    finally:
        await container.close()


@contextlib.asynccontextmanager
async def _holding(database_url: str, *statements: str, args: Any = ()) -> AsyncIterator[None]:
    """Another client's open transaction that ran ``statements`` (taking their locks)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    transaction = connection.transaction()
    await transaction.start()
    try:
        for statement in statements:
            await connection.execute(statement, *args)
        yield
    finally:
        await transaction.rollback()
        await connection.close()


async def _poll(condition: Callable[[], Awaitable[bool]], what: str | Callable[[], str]) -> None:
    await wait_for(condition, within=20, what=what)


def _is_retryable_unavailable(response: httpx.Response) -> None:
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert error["details"] == {"dependency": "database", "retryable": True}
    assert response.headers["retry-after"] == "1"


async def test_a_confirm_on_a_batch_locked_elsewhere_answers_503_instead_of_hanging(
    make_settings: MakeSettings,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    batch = await seed_batch(session_factory)
    body = {
        "associations": [
            {"essay_id": str(essay), "student_id": str(student), "confirmed": True}
            for essay, student in zip(batch.essays, batch.suggested, strict=True)
        ]
    }
    url = f"/v1/batches/{batch.batch_id}/student-associations/confirm"
    async with _service(make_settings(database_lock_timeout_ms=50)) as (client, _):
        async with _holding(
            database_url,
            "SELECT 1 FROM essay_student_associations WHERE batch_id = $1 FOR UPDATE",
            args=(batch.batch_id,),
        ):
            locked = await _without_hanging(
                client.post(url, json=body, headers=teacher("teacher-a"))
            )
            _is_retryable_unavailable(locked)
            # Other teachers' writes go on meanwhile.
            await create_class(client, owner="teacher-b")
        retried = await client.post(url, json=body, headers=teacher("teacher-a"))
        assert retried.status_code == 200, retried.text
        assert retried.json()["finalized"] is True


async def test_a_write_that_gets_no_pooled_connection_answers_503(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(database_pool_size=1, database_pool_timeout_seconds=0.05)
    async with _service(settings) as (client, container):
        async with container.engine.connect() as held:
            await held.execute(text("SELECT 1"))  # the pool's only connection is busy
            answer = await _without_hanging(
                client.post(
                    "/v1/classes/",
                    json={"name": "9A", "course_codes": ["ENG5"]},
                    headers=teacher("teacher-a"),
                )
            )
            _is_retryable_unavailable(answer)
        await create_class(client)  # the connection is back: writes work again


async def test_a_read_that_gets_no_pooled_connection_answers_503(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(database_read_pool_size=1, database_pool_timeout_seconds=0.05)
    async with _service(settings) as (client, container):
        created = await create_class(client)
        url = f"/v1/classes/{created['id']}"
        async with container.read_only_database.connection():
            answer = await _without_hanging(client.get(url, headers=teacher("teacher-a")))
            _is_retryable_unavailable(answer)
        assert (await client.get(url, headers=teacher("teacher-a"))).status_code == 200


async def test_healthz_checks_the_database_without_the_request_pools(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(database_pool_size=1, database_read_pool_size=1)
    async with (
        _service(settings) as (client, container),
        container.engine.connect() as held,
        container.read_only_database.connection(),
    ):
        await held.execute(text("SELECT 1"))
        # Redis and Kafka are down in this test (closed ports); the database is not.
        answer = await _without_hanging(client.get("/healthz"))
    body = answer.json()
    assert body["dependencies"]["database"] == {"status": "ok"}
    assert (answer.status_code, body["status"]) == (503, "unhealthy")
    assert isinstance(body["message"], str)
    assert "redis" in body["message"]
    assert "database" not in body["message"]


async def test_a_confirm_that_loses_the_race_against_the_students_deletion_answers_409(
    api_client: httpx.AsyncClient,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    batch = await seed_batch(session_factory, spare_students=1)
    (spare,) = batch.spare_students
    body = {
        "associations": [
            {"essay_id": str(batch.essays[0]), "student_id": str(spare), "confirmed": True}
        ]
    }
    url = f"/v1/batches/{batch.batch_id}/student-associations/confirm"
    deleter = await asyncpg.connect(asyncpg_dsn(database_url))
    observer = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        deletion = deleter.transaction()
        await deletion.start()
        # The deletion is under way but not committed: the confirm still finds the student on
        # the roster, then waits on the student's row for its foreign-key check.
        await deleter.execute("DELETE FROM students WHERE id = $1", spare)
        confirm = asyncio.create_task(api_client.post(url, json=body, headers=teacher("teacher-a")))

        async def confirm_waits_on_the_lock() -> bool:
            assert not confirm.done(), confirm.result().text
            # Not on the deleter: inside a transaction pg_stat_activity is a frozen snapshot.
            waiting = await observer.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            return bool(waiting)

        await _poll(confirm_waits_on_the_lock, "the confirm waiting on the student's row")
        await deletion.commit()
        answer = await _without_hanging(confirm)
    finally:
        await deleter.close()
        await observer.close()
    error = assert_error(answer, 409, "CONFLICT")
    assert error["details"] == {"sqlstate": "23503"}
    listing = await api_client.get(
        f"/v1/batches/{batch.batch_id}/student-associations", headers=teacher("teacher-a")
    )
    assert all(item["status"] == "pending_validation" for item in listing.json()["associations"])


async def test_every_service_connection_commits_durably_with_bounded_waits(
    make_settings: MakeSettings, database_url: str
) -> None:
    """Row 2: the local servers default to ``synchronous_commit=off`` (kill -9 lost commits
    the service had acknowledged); the service's own connections turn it on."""
    plain = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        server_default = await plain.fetchval("SHOW synchronous_commit")
    finally:
        await plain.close()
    settings = make_settings(database_lock_timeout_ms=1234, database_statement_timeout_ms=56789)
    expected = {
        "synchronous_commit": "on",
        "lock_timeout": "1234ms",
        "statement_timeout": "56789ms",
    }
    query = (
        "SELECT current_setting('synchronous_commit'), current_setting('lock_timeout'), "
        "current_setting('statement_timeout')"
    )

    def as_dict(row: Any) -> dict[str, str]:
        return dict(zip(expected, (str(value) for value in row), strict=True))

    async with _service(settings) as (_, container):
        async with container.engine.connect() as connection:
            engine_row = (await connection.execute(text(query))).one()
        async with container.read_only_database.connection() as reader:
            read_row = await reader.fetchrow(query)
        listener = await connect_listener(settings, lambda *_: None)
        assert listener is not None
        try:
            listener_row = await listener.fetchrow(query)
        finally:
            await listener.close()
    for row in (engine_row, read_row, listener_row):
        assert as_dict(row) == expected
    if server_default != "off":
        pytest.skip(f"the server's default is {server_default!r} already: nothing to override")


async def test_workers_back_off_while_their_tables_are_locked_and_resume_after(
    make_settings: MakeSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The backoff's delays scaled down 50x (under 10, 20, 40 ms instead of 0.5, 1, 2 s): what is
    # checked is that the workers fail a pass, back off and resume, not how long they wait.
    monkeypatch.setattr(supervisor, "_BACKOFF_BASE_SECONDS", 0.01)
    settings = make_settings(database_lock_timeout_ms=100, outbox_poll_interval_seconds=0.05)
    # The workers' sessions wait for a lock as long as these settings say (not the default 5 s).
    engine = db.create_engine(settings)
    session_factory = db.create_session_factory(engine)
    # Its producer is never asked: nothing is due.
    relay = make_relay(session_factory, SharedProducer(settings), settings)
    monitor = timeout_monitor(session_factory, settings)
    tasks = [asyncio.create_task(worker.run()) for worker in (relay, monitor)]
    try:
        async with _holding(
            database_url,
            "LOCK TABLE outbox_events, essay_student_associations IN ACCESS EXCLUSIVE MODE",
        ):

            async def both_backed_off_twice() -> bool:
                assert not any(task.done() for task in tasks), [t.exception() for t in tasks]
                return relay.backoff.failures >= 2 and monitor.backoff.failures >= 2

            def state() -> str:
                return "both workers failing a pass and backing off: " + "; ".join(
                    f"{name} {w.backoff.failures} failures, last {w.backoff.last_error!r}"
                    for name, w in (("relay", relay), ("monitor", monitor))
                )

            await _poll(both_backed_off_twice, state)
            assert "lock timeout" in (relay.backoff.last_error or "")
            assert "lock timeout" in (monitor.backoff.last_error or "")

        async def both_recovered() -> bool:
            assert not any(task.done() for task in tasks), [t.exception() for t in tasks]
            return relay.backoff.failures == 0 and monitor.backoff.failures == 0

        await _poll(both_recovered, "both workers passing again after the lock was released")
    finally:
        await cancel_and_wait(tasks)
        await engine.dispose()
