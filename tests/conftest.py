"""Test harness shared by every test file.

Imports of the app, SQLAlchemy, asyncpg, redis and httpx happen inside the fixtures that use
them, so that a unit-test file does not pay ~1 s for imports it never needs.

Servers come from the ``local_infra`` pytest plugin: each is started once per session, lazily,
only when a test asks for it, so a PostgreSQL-only file never starts Redis or Kafka.

PostgreSQL isolation: a template database gets the migrated schema once per session (loaded from
a dump cached across runs, see ``tests/databases.py``); every test gets a database of its own, as
fresh as a clone of that template: a clone, or one a previous test used, emptied back to the
template's state in the background (dropped instead if its schema changed).
A database of its own (rather than a SAVEPOINT rollback) lets tests use several real connections at
once, which the concurrency tests need.
"""

from __future__ import annotations

import gc
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from local_infra.external import external_from_env
from local_infra.install import ensure_installed
from local_infra.paths import bytecode_cache
from local_infra.session import SessionInfra

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from class_management_service.settings import Settings
    from tests.databases import DatabaseClones

# tests.reliability.report: the fault table's rows recorded in xdist workers, merged at the end.
pytest_plugins = ["local_infra.pytest_plugin", "tests.reliability.report"]

TEMPLATE_DATABASE = "cms_test_template"
FIRST_DATABASE = "cms_test_first"
INTERNAL_API_KEY = "test-internal-api-key"


def pytest_configure(config: pytest.Config) -> None:
    # Collection imports the app (~1 s, the largest part of a small file's run): no cyclic
    # garbage collector passes over the growing heap meanwhile (~15 % of the imports' CPU).
    gc.disable()
    # And from compiled bytecode, cached where the service processes keep theirs
    # (tests/service_process.py): with PYTHONDONTWRITEBYTECODE (set on the shared machine) every
    # session compiled the project's modules again, ~0.08 s of a file's CPU.
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(bytecode_cache())


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    # What the imports built lives to the end: frozen, the collector never walks it again (the
    # passes during the tests, and pytest's forced collections at the end, stay cheap).
    gc.freeze()
    gc.enable()


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/reliability/conftest.py: options must be known before collection.
    parser.addoption(
        "--reliability-report",
        action="store_true",
        help="rewrite docs/reliability.md from a complete run of tests/reliability",
    )


def _binaries(name: str) -> Any:
    @pytest.fixture(scope="session", name=f"{name}_binaries")
    def installed(local_infra_session: SessionInfra) -> Path:
        """The local-infra cache with the server installed, for a test that starts its own."""
        if external_from_env(name) is not None:
            pytest.skip(f"{name} is external in this environment; no local one is started")
        ensure_installed([name], root=local_infra_session.root, log=local_infra_session.log)
        return local_infra_session.root / "cache"

    return installed


postgres_binaries = _binaries("postgres")
redis_binaries = _binaries("redis")
kafka_binaries = _binaries("kafka")


@pytest.fixture(scope="session")
def postgres_admin_url(postgres_server: Any) -> str:
    url: str = postgres_server.url_for("postgres")
    return url


@pytest.fixture(scope="session")
def template_databases(
    postgres_server: Any, postgres_admin_url: str, local_infra_root: Path
) -> tuple[str, list[str]]:
    """The template database with the migrated schema, made once per session, and the databases
    made alongside it for the first tests (none when the schema had to be migrated)."""
    from tests.databases import create_template

    ready = create_template(
        postgres_admin_url,
        postgres_server.url_for(TEMPLATE_DATABASE),
        local_infra_root / "cache",
        postgres_server.url_for(FIRST_DATABASE),
    )
    return TEMPLATE_DATABASE, [FIRST_DATABASE] if ready else []


@pytest.fixture(scope="session")
def migrated_template(template_databases: tuple[str, list[str]]) -> str:
    return template_databases[0]


@pytest.fixture(scope="session")
async def database_clones(
    postgres_admin_url: str, template_databases: tuple[str, list[str]]
) -> AsyncIterator[DatabaseClones]:
    from tests.databases import DatabaseClones

    template, ready = template_databases
    async with DatabaseClones.of(postgres_admin_url, template, ready=ready) as clones:
        yield clones


@pytest.fixture(scope="session")
def last_database_test(request: pytest.FixtureRequest) -> str | None:
    """The session's last test that asks for a database: after it, none is made ready."""
    users = [i.nodeid for i in request.session.items if "database_url" in _fixtures_of(i)]
    return users[-1] if users else None


@pytest.fixture
async def database_url(
    request: pytest.FixtureRequest,
    postgres_server: Any,
    database_clones: DatabaseClones,
    last_database_test: str | None,
) -> AsyncIterator[str]:
    """A fresh, migrated database for this test only."""
    more = request.node.nodeid != last_database_test
    name = await database_clones.take(more=more)
    yield postgres_server.url_for(name)
    database_clones.release(name, more=more)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    from class_management_service import db
    from class_management_service.settings import Settings

    engine = db.create_engine(Settings(database_url=database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    from class_management_service import db

    return db.create_session_factory(engine)


@pytest.fixture
async def redis_url(redis_server: Any) -> str:
    """The session's Redis, flushed before each test that uses it."""
    from redis.asyncio import Redis

    url: str = redis_server.url
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    return url


@pytest.fixture
def kafka_bootstrap(kafka_server: Any) -> str:
    bootstrap: str = kafka_server.url
    return bootstrap


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Unique topic / consumer-group names per test, so Kafka tests never see each other's data."""
    suffix = uuid.uuid4().hex[:10]
    return lambda prefix: f"{prefix}.{suffix}"


# Placeholders that no PostgreSQL-only test ever connects to (the app only builds clients).
_UNUSED_REDIS = "redis://127.0.0.1:1/0"
_UNUSED_KAFKA = "127.0.0.1:1"


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Settings for this test's database; Redis/Kafka only when a test passes them."""

    from class_management_service.settings import Settings

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": _UNUSED_REDIS,
            "kafka_bootstrap_servers": _UNUSED_KAFKA,
            "internal_api_key": INTERNAL_API_KEY,
            "run_consumer": False,
            "run_outbox_relay": False,
            "run_timeout_monitor": False,
            "run_retention": False,
            **overrides,
        }
        return Settings(**values)

    return make


@pytest.fixture
async def api_client(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API in-process over the test database, with no background workers."""
    from tests.http_helpers import app_client

    async with app_client(make_settings()) as client:
        yield client


@pytest.fixture
def teacher_headers() -> Callable[[str], dict[str, str]]:
    return lambda teacher: {"X-User-ID": teacher}


@pytest.fixture
def internal_headers() -> dict[str, str]:
    return {"X-Internal-API-Key": INTERNAL_API_KEY, "X-Service-ID": "nlp_service"}


# What a test needs follows from the fixtures it uses (``item.fixturenames`` is the closure, so a
# fixture that depends on a server counts too): the markers cannot disagree with the test.
# The server markers are tiers, so that selecting one never starts a heavier server: ``postgres``
# is PostgreSQL only, ``redis`` is Redis (and maybe PostgreSQL), ``kafka`` the broker (and maybe
# both others); ``-m "not kafka"`` starts no broker.
_SERVER_FIXTURES = {  # a session server, or the binaries for a test that starts its own
    "postgres": {"postgres_server", "postgres_binaries"},
    "redis": {"redis_server", "redis_binaries"},
    "kafka": {"kafka_server", "kafka_binaries"},
}
_TIERS = ("kafka", "redis", "postgres")
# Fixtures that run the real service (or its CLI) as an OS process (it needs whatever servers
# they ask for).
_SERVICE_FIXTURES = {"service_process", "start_service", "fleet", "cli"}
_RELIABILITY_DIR = Path(__file__).parent / "reliability"


def _fixtures_of(item: pytest.Item) -> set[str]:
    return set(getattr(item, "fixturenames", ()))


def derived_markers(item: pytest.Item) -> set[str]:
    fixtures = _fixtures_of(item)
    needs = [tier for tier in _TIERS if fixtures & _SERVER_FIXTURES[tier]]
    markers = {needs[0] if needs else "unit"}
    if fixtures & _SERVICE_FIXTURES:
        markers.add("service")
    if item.path.is_relative_to(_RELIABILITY_DIR):
        markers.add("reliability")
    return markers


# Directories that promise exactly one tier (tests/kafka may hold a test that turned out lighter).
_DIRECTORY_TIERS = {Path(__file__).parent / tier: tier for tier in ("unit", "postgres")}


# Under pytest-xdist (``./dev test``: two workers, each with servers of its own, handed one test
# at a time) the longest tests are handed out first, so that no worker starts a long one while the
# other has nothing left to do: the schemathesis run, the tests that run the service as processes,
# then the broker, Redis, PostgreSQL and unit tests. A run without workers keeps the files' order.
_LONGEST = Path(__file__).parent / "service" / "test_openapi_fuzz.py"
_HANDED_OUT_IN_ORDER = ("reliability", "service", "kafka", "redis", "postgres", "unit")


def _hand_out_rank(item: pytest.Item) -> int:
    if item.path == _LONGEST:
        return -1
    names = {marker.name for marker in item.iter_markers()}
    return next(rank for rank, name in enumerate(_HANDED_OUT_IN_ORDER) if name in names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        markers = derived_markers(item)
        for directory, tier in _DIRECTORY_TIERS.items():
            if item.path.is_relative_to(directory) and tier not in markers:
                raise pytest.UsageError(
                    f"{item.nodeid} is in tests/{tier}/ but uses {sorted(markers)}: move it"
                )
        for marker in sorted(markers):
            item.add_marker(marker)
    if hasattr(config, "workerinput"):  # an xdist worker; every worker sorts alike
        items.sort(key=_hand_out_rank)
