"""Fixtures for the orders tests: orders and inventory built through their bootstraps on one
in-memory bus (``memory://`` stores), and an ASGI client per service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from stockflow.inventory.bootstrap import InventoryService
from stockflow.inventory.bootstrap import build as build_inventory
from stockflow.inventory.settings import InventorySettings
from stockflow.orders.bootstrap import OrdersService
from stockflow.orders.bootstrap import build as build_orders
from stockflow.orders.settings import OrdersSettings
from stockflow_kit.messaging import InMemoryBus

SERVICE_TOKEN = "test-service-credential"
AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}


def orders_settings(**overrides: object) -> OrdersSettings:
    values: dict[str, object] = {
        "database_url": "memory://",
        "bus_url": "memory://",
        "batch_wait": 0.01,
        "saga_check_seconds": 0.05,
        "service_token": SERVICE_TOKEN,
    }
    values.update(overrides)
    return OrdersSettings(**values)  # type: ignore[arg-type]


def inventory_settings(**overrides: object) -> InventorySettings:
    values: dict[str, object] = {
        "event_store_url": "memory://",
        "bus_url": "memory://",
        "batch_wait": 0.01,
        "service_token": SERVICE_TOKEN,
    }
    values.update(overrides)
    return InventorySettings(**values)  # type: ignore[arg-type]


def customer(user: str) -> dict[str, str]:
    return {**AUTH, "X-Stockflow-User": user}


STAFF = {**AUTH, "X-Stockflow-Role": "staff"}


@dataclass
class System:
    """Orders and inventory on one bus, with an HTTP client for each."""

    bus: InMemoryBus
    orders: OrdersService
    inventory: InventoryService
    orders_http: httpx.AsyncClient
    inventory_http: httpx.AsyncClient

    async def receive(self, sku: str, qty: int) -> None:
        response = await self.inventory_http.post(
            f"/inventory/{sku}/receipts", json={"qty": qty}, headers=AUTH
        )
        assert response.status_code == 201, response.text

    async def place(
        self, lines: list[dict[str, Any]], *, user: str = "alice", key: str | None = None
    ) -> httpx.Response:
        headers = {**customer(user), "Idempotency-Key": key or f"k-{time.monotonic_ns()}"}
        return await self.orders_http.post("/orders", json={"lines": lines}, headers=headers)

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.orders_http.get(f"/orders/{order_id}", headers=STAFF)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def settled(self, order_id: str, *, within: float = 10.0) -> dict[str, Any]:
        """The order once it is no longer PENDING."""
        return await eventually(
            lambda: self.order(order_id), lambda o: o["status"] != "PENDING", within
        )

    async def stock(self, sku: str) -> dict[str, Any]:
        response = await self.inventory_http.get(f"/inventory/{sku}", headers=AUTH)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def eventually(
    read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], within: float = 10.0
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {within} s")
        await asyncio.sleep(0.02)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def system(bus: InMemoryBus) -> AsyncIterator[System]:
    inventory = build_inventory(inventory_settings(), bus=bus)
    orders = build_orders(orders_settings(), bus=bus)
    await inventory.start()
    await orders.start()
    async with client(orders.app) as orders_http, client(inventory.app) as inventory_http:
        yield System(bus, orders, inventory, orders_http, inventory_http)
    await orders.stop()
    await inventory.stop()
