"""Fixtures for the inventory tests: a service built through ``bootstrap.build`` on memory://."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from stockflow.inventory.bootstrap import InventoryService, build
from stockflow.inventory.domain.commands import (
    AdjustStock,
    Command,
    ReceiveStock,
    ReleaseReservation,
    ReserveStock,
    ShipStock,
)
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


def random_commands(rng: random.Random, skus: list[str], count: int) -> list[Command]:
    """Receipts, adjustments, 1-3-line reservations (some of SKUs never received) and
    releases or shipments of earlier orders."""
    commands: list[Command] = []
    for i in range(count):
        kind = rng.random()
        sku = rng.choice(skus)
        if kind < 0.3:
            commands.append(ReceiveStock(sku=sku, qty=rng.randint(1, 20)))
        elif kind < 0.4:
            commands.append(AdjustStock(sku=sku, delta=rng.randint(-5, 5) or 1))
        elif kind < 0.75:
            lines = tuple((s, rng.randint(1, 5)) for s in rng.sample(skus, rng.randint(1, 3)))
            commands.append(ReserveStock(order_id=f"o-{i}", lines=lines))
        else:
            order = f"o-{rng.randrange(i + 1)}"
            settle = ReleaseReservation if kind < 0.9 else ShipStock
            commands.append(settle(order_id=order, skus=tuple(skus)))
    return commands


@pytest.fixture
async def service(bus: InMemoryBus) -> AsyncIterator[InventoryService]:
    service = build(memory_settings(), bus=bus)
    await service.start()
    yield service
    await service.stop()
