"""Fixtures for the inventory tests: a service built through ``bootstrap.build`` on memory://."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stockflow.inventory.bootstrap import InventoryService, build
from stockflow.inventory.settings import InventorySettings
from stockflow_kit.messaging import InMemoryBus

SERVICE_TOKEN = "test-service-credential"
"""The service credential of the services these fixtures build."""


def memory_settings(**overrides: object) -> InventorySettings:
    values: dict[str, object] = {
        "event_store_url": "memory://",
        "bus_url": "memory://",
        "batch_wait": 0.01,
        "snapshot_every": 3,
        "service_token": SERVICE_TOKEN,
    }
    values.update(overrides)
    return InventorySettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def service(bus: InMemoryBus) -> AsyncIterator[InventoryService]:
    service = build(memory_settings(), bus=bus)
    await service.start()
    yield service
    await service.stop()
