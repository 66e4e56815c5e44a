"""Fixtures for the edge tests: edge built through its bootstrap in front of the REAL
inventory and orders (in-process, ``memory://`` stores, one in-memory bus) and the fakes of
profiles and notifications (tests/edge/fakes.py), each reached through a switchable ASGI
transport; clients mint tokens with the test secret."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.edge.fakes import Seen, Switch, notifications_app, profiles_app

from stockflow.edge.adapters.tokens import issue_token
from stockflow.edge.bootstrap import EdgeService
from stockflow.edge.bootstrap import build as build_edge
from stockflow.edge.settings import EdgeSettings
from stockflow.inventory.bootstrap import build as build_inventory
from stockflow.inventory.settings import InventorySettings
from stockflow.orders.bootstrap import build as build_orders
from stockflow.orders.settings import OrdersSettings
from stockflow_kit.messaging import InMemoryBus

SERVICE_TOKEN = "test-service-credential"
JWT_SECRET = "edge-test-secret-edge-test-secret-edge-test-secret"


def token(user: str, role: str = "customer", *, ttl: float = 6 * 3600) -> str:
    return issue_token(JWT_SECRET, user=user, role=role, ttl_seconds=ttl)


def bearer(user: str, role: str = "customer") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, role)}"}


STAFF = bearer("sam", "staff")


def edge_settings(**overrides: object) -> EdgeSettings:
    values: dict[str, object] = {
        "service_token": SERVICE_TOKEN,
        "jwt_secret": JWT_SECRET,
        "rate_limit": "1000/second",
        "downstream_timeout_seconds": 2.0,
        "breaker_failure_threshold": 3,
        "breaker_reset_seconds": 30.0,
    }
    values.update(overrides)
    return EdgeSettings(**values)  # type: ignore[arg-type]


@dataclass
class Edge:
    """Edge in front of the real inventory and orders and the two fakes."""

    service: EdgeService
    http: httpx.AsyncClient
    switches: dict[str, Switch]
    seen: dict[str, Seen]

    async def receive(self, sku: str, qty: int) -> None:
        response = await self.http.post(
            f"/inventory/{sku}/receipts", json={"qty": qty}, headers=STAFF
        )
        assert response.status_code == 201, response.text

    async def place(self, user: str, lines: list[dict[str, Any]], key: str) -> httpx.Response:
        return await self.http.post(
            "/orders",
            json={"lines": lines},
            headers={**bearer(user), "Idempotency-Key": key},
        )

    async def settled(self, order_id: str, *, within: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            response = await self.http.get(f"/orders/{order_id}", headers=STAFF)
            body: dict[str, Any] = response.json()
            if response.status_code == 200 and body["status"] != "PENDING":
                return body
            assert time.monotonic() < deadline, body
            await _sleep()


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.02)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge")


@pytest.fixture
def edge_overrides() -> dict[str, object]:
    """Settings a test module changes for its edge (override the fixture)."""
    return {}


@pytest.fixture
def stores() -> dict[str, str]:
    """The inventory's and the orders' store URLs (override the fixture for real files)."""
    return {"inventory": "memory://", "orders": "memory://"}


@pytest.fixture
async def edge(
    bus: InMemoryBus, edge_overrides: dict[str, object], stores: dict[str, str]
) -> AsyncIterator[Edge]:
    common = {"bus_url": "memory://", "batch_wait": 0.01, "service_token": SERVICE_TOKEN}
    inventory = build_inventory(
        InventorySettings(event_store_url=stores["inventory"], **common),  # type: ignore[arg-type]
        bus=bus,
    )
    orders = build_orders(
        OrdersSettings(database_url=stores["orders"], saga_check_seconds=0.05, **common),  # type: ignore[arg-type]
        bus=bus,
    )
    profiles, profiles_seen = profiles_app(SERVICE_TOKEN)
    notifications, notifications_seen = notifications_app(SERVICE_TOKEN)
    switches = {
        "inventory": Switch(inventory.app),
        "orders": Switch(orders.app),
        "profiles": Switch(profiles),
        "notifications": Switch(notifications),
    }
    service = build_edge(edge_settings(**edge_overrides), transports=switches)
    await inventory.start()
    await orders.start()
    await service.start()
    try:
        async with client(service.app) as http:
            yield Edge(
                service,
                http,
                switches,
                {"profiles": profiles_seen, "notifications": notifications_seen},
            )
    finally:
        await service.stop()
        await orders.stop()
        await inventory.stop()


Clock = Callable[[], float]
