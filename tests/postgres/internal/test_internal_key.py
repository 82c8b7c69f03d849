"""The internal API key fails closed: no built-in key, the platform's shared variable honoured,
and nothing (not even an empty key) gets in while no key is configured."""

from __future__ import annotations

import logging
import uuid

import pytest

from class_management_service.settings import Settings
from tests.http_helpers import app_client, assert_error, create_class

# The key this service used to fall back to when none was configured.
FORMER_DEFAULT_KEY = "dev-internal-api-key"


def _internal_paths(class_id: str) -> list[str]:
    return [
        f"/v1/classes/{class_id}/roster",
        f"/internal/v1/batches/{uuid.uuid4()}/student-names",
        f"/internal/v1/associations/essay/{uuid.uuid4()}",
        f"/internal/v1/batches/class-info?batch_ids={uuid.uuid4()}",
    ]


@pytest.fixture
def environment_settings(database_url: str, monkeypatch: pytest.MonkeyPatch) -> type[Settings]:
    """Settings read from a clean environment (no key variables) plus this test's database."""
    for name in ("CLASS_MANAGEMENT_SERVICE_INTERNAL_API_KEY", "HULEEDU_INTERNAL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "DATABASE_URL": database_url,
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "RUN_CONSUMER": "false",
        "RUN_OUTBOX_RELAY": "false",
        "RUN_TIMEOUT_MONITOR": "false",
    }.items():
        monkeypatch.setenv(f"CLASS_MANAGEMENT_SERVICE_{name}", value)
    return Settings


async def test_without_a_configured_key_internal_routes_refuse_everything_and_say_so(
    environment_settings: type[Settings], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        settings = environment_settings()
        async with app_client(settings) as client:
            class_id = (await create_class(client))["id"]
            for key in (FORMER_DEFAULT_KEY, "", "anything"):
                for path in _internal_paths(class_id):
                    headers = {"X-Internal-API-Key": key, "X-Service-ID": "nlp_service"}
                    assert_error(await client.get(path, headers=headers), 401, "UNAUTHORIZED")

    assert settings.internal_api_key is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "no internal API key" in message and "HULEEDU_INTERNAL_API_KEY" in message
        for message in warnings
    ), warnings


async def test_the_platforms_shared_key_opens_the_internal_routes(
    environment_settings: type[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HULEEDU_INTERNAL_API_KEY", "shared-secret")
    async with app_client(environment_settings()) as client:
        class_id = (await create_class(client))["id"]
        # As the platform's BFF sends it.
        bff = {"X-Internal-API-Key": "shared-secret", "X-Service-ID": "bff-teacher-service"}
        for path in _internal_paths(class_id):
            response = await client.get(path, headers=bff)
            # Past authentication: the essay nobody stored is a 404, the rest answer.
            assert response.status_code == (404 if "/essay/" in path else 200), response.text
        former = {**bff, "X-Internal-API-Key": FORMER_DEFAULT_KEY}
        assert_error(
            await client.get(_internal_paths(class_id)[3], headers=former), 401, "UNAUTHORIZED"
        )


async def test_the_service_variable_overrides_the_shared_key(
    environment_settings: type[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HULEEDU_INTERNAL_API_KEY", "shared-secret")
    monkeypatch.setenv("CLASS_MANAGEMENT_SERVICE_INTERNAL_API_KEY", "service-secret")
    async with app_client(environment_settings()) as client:
        path = f"/internal/v1/batches/class-info?batch_ids={uuid.uuid4()}"

        def headers(key: str) -> dict[str, str]:
            return {"X-Internal-API-Key": key, "X-Service-ID": "bff-teacher-service"}

        assert (await client.get(path, headers=headers("service-secret"))).status_code == 200
        shared = await client.get(path, headers=headers("shared-secret"))
    assert_error(shared, 401, "UNAUTHORIZED")
