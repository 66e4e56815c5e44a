"""The settings base and the spec: what a service reads from where, and its own database."""

from __future__ import annotations

import pytest

from stockflow.inventory.bootstrap import SPEC as INVENTORY
from stockflow.inventory.settings import InventorySettings
from stockflow.platform.startup import explain, redact_url


def test_shared_fields_fall_back_to_stockflow_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKFLOW_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("STOCKFLOW_SERVICE_TOKEN", "shared-secret")
    monkeypatch.setenv("BUS_URL", "nats://bus:4222")
    settings = InventorySettings()
    assert (settings.log_level, settings.token(), settings.bus_url) == (
        "DEBUG",
        "shared-secret",
        "nats://bus:4222",
    )


def test_the_services_own_variable_wins_over_the_shared_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STOCKFLOW_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("INVENTORY_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("BUS_URL", "nats://shared:4222")
    monkeypatch.setenv("INVENTORY_BUS_URL", "nats://own:4222")
    settings = InventorySettings()
    assert (settings.log_level, settings.bus_url) == ("WARNING", "nats://own:4222")


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_PORT", "9999")
    assert InventorySettings(port=1234).port == 1234


def test_fields_that_are_not_shared_ignore_the_stockflow_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STOCKFLOW_PORT", "9999")
    monkeypatch.setenv("STOCKFLOW_BATCH_SIZE", "7")
    settings = InventorySettings()
    assert (settings.port, settings.batch_size) == (8002, 1000)


def test_the_credential_is_a_secret_in_every_rendering() -> None:
    settings = InventorySettings(service_token="s3cret-value")
    assert "s3cret-value" not in repr(settings)
    assert "s3cret-value" not in settings.model_dump_json()
    assert settings.token() == "s3cret-value"


def test_each_service_gets_its_own_database_next_to_the_base_url() -> None:
    base = "postgresql://user:pw@db:5432/stockflow?sslmode=disable"
    assert (
        INVENTORY.distributed_store_url(base)
        == "postgresql://user:pw@db:5432/stockflow_inventory?sslmode=disable"
    )
    assert INVENTORY.env_name("event_store_url") == "INVENTORY_EVENT_STORE_URL"


def test_a_start_up_failure_names_the_dependency_without_its_password() -> None:
    error = ConnectionRefusedError(111, "Connect call failed")
    line = explain("inventory", error, {"database": "postgresql://u:hunter2@db/x"})
    assert "hunter2" not in line
    assert "is PostgreSQL running?" in line
    assert redact_url("postgresql://u:hunter2@db/x") == "postgresql://u:***@db/x"
