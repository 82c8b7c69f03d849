"""Where the internal API key and the roster access setting come from (environment only)."""

from __future__ import annotations

import pytest

from class_management_service.settings import Settings

SERVICE_KEY = "CLASS_MANAGEMENT_SERVICE_INTERNAL_API_KEY"
SHARED_KEY = "HULEEDU_INTERNAL_API_KEY"
ROSTER_SETTING = "CLASS_MANAGEMENT_SERVICE_ROSTER_UNAUTHENTICATED_ACCESS"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (SERVICE_KEY, SHARED_KEY, ROSTER_SETTING):
        monkeypatch.delenv(name, raising=False)


def _key(settings: Settings) -> str | None:
    key = settings.internal_api_key
    return key.get_secret_value() if key is not None else None


def test_there_is_no_built_in_key() -> None:
    assert _key(Settings()) is None


def test_the_platforms_shared_key_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SHARED_KEY, "shared-secret")
    assert _key(Settings()) == "shared-secret"


def test_the_service_variable_overrides_the_shared_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SHARED_KEY, "shared-secret")
    monkeypatch.setenv(SERVICE_KEY, "service-secret")
    assert _key(Settings()) == "service-secret"


@pytest.mark.parametrize("variable", [SERVICE_KEY, SHARED_KEY])
def test_an_empty_key_is_no_key(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "")
    assert _key(Settings()) is None
    assert _key(Settings(internal_api_key="")) is None


def test_the_key_never_shows_in_a_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SHARED_KEY, "shared-secret")
    assert "shared-secret" not in repr(Settings())


def test_anonymous_roster_reads_are_off_unless_the_operator_turns_them_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().roster_unauthenticated_access is False
    monkeypatch.setenv(ROSTER_SETTING, "true")
    assert Settings().roster_unauthenticated_access is True
