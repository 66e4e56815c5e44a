"""The ``deployment`` fixture: embedded (SQLite + embedded bus) or distributed (PostgreSQL +
NATS JetStream), each test on its own stores and streams, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tests.orders.integration.deployment import Deployment
from tests.servers import admin_execute, delete_streams

SAGA = {
    "ORDERS_SAGA_TIMEOUT_SECONDS": "3",
    "ORDERS_SAGA_CHECK_SECONDS": "0.2",
    "ORDERS_BATCH_WAIT": "0.02",
    "INVENTORY_BATCH_WAIT": "0.02",
    "ORDERS_ACK_WAIT": "5",
    "INVENTORY_ACK_WAIT": "5",
    "ORDERS_MAX_DELIVER": "1000",
    "INVENTORY_MAX_DELIVER": "1000",
}


@pytest.fixture
def embedded(tmp_path: Path) -> Deployment:
    data = tmp_path / "data"
    data.mkdir()
    env = {
        **SAGA,
        "BUS_URL": f"sqlite:///{data / 'bus.sqlite3'}",
        "INVENTORY_EVENT_STORE_URL": f"sqlite:///{data / 'inventory.sqlite3'}",
        "ORDERS_DATABASE_URL": f"sqlite:///{data / 'orders.sqlite3'}",
    }
    return Deployment("embedded", env, ["--data-dir", str(data)], tmp_path)


@asynccontextmanager
async def on_postgres(
    name: str, tmp_path: Path, postgres_url: str, bus_url: str
) -> AsyncIterator[Deployment]:
    """A distributed deployment on its own inventory schema and orders database, on *bus_url*."""
    run = uuid.uuid4().hex[:10]
    orders_db = f"orders_{run}"
    await admin_execute(postgres_url, f'CREATE DATABASE "{orders_db}"')
    orders_url = postgres_url.rsplit("/", 1)[0] + f"/{orders_db}"
    env = {
        **SAGA,
        "BUS_URL": bus_url.replace("{run}", run),
        "INVENTORY_EVENT_STORE_URL": postgres_url,
        "INVENTORY_EVENT_STORE_SCHEMA": f"inv_{run}",
        "ORDERS_DATABASE_URL": orders_url,
    }
    audit = ["--event-store-url", postgres_url, "--schema", f"inv_{run}"]
    deployment = Deployment(name, env, [*audit, "--orders-url", orders_url], tmp_path)
    try:
        yield deployment
    finally:
        for process in deployment.processes.values():
            process.kill()
        if bus_url.startswith("nats"):
            await delete_streams(bus_url.split("?")[0], prefix=f"t{run}_")
        await admin_execute(postgres_url, f'DROP DATABASE IF EXISTS "{orders_db}" WITH (FORCE)')


@pytest.fixture
async def distributed(
    tmp_path: Path, postgres_url: str, nats_url: str
) -> AsyncIterator[Deployment]:
    async with on_postgres(
        "distributed", tmp_path, postgres_url, f"{nats_url}?prefix=t{{run}}"
    ) as d:
        yield d


@pytest.fixture
async def kafka(tmp_path: Path, postgres_url: str) -> AsyncIterator[Deployment]:
    """Distributed, with the Kafka-protocol bus: a private Tansu broker for the test.

    ``session_timeout=2`` (default 10): Tansu holds a new group's first join for about half
    the consumers' rebalance timeout (the session timeout), capped at 5 s, so each of the
    three groups a start joins cost 5 s at the default and costs 1 s here. No test here
    relies on a silent consumer's partitions moving (inventory is stopped cleanly: it leaves
    its groups)."""
    from stockflow_kit.messaging.local_brokers import LocalTansu

    with LocalTansu() as broker:
        bus_url = f"{broker.url}?session_timeout=2"
        async with on_postgres("kafka", tmp_path, postgres_url, bus_url) as deployment:
            yield deployment


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("distributed", marks=pytest.mark.integration),
        pytest.param("kafka", marks=pytest.mark.integration),
    ]
)
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    chosen: Deployment = request.getfixturevalue(request.param)
    try:
        yield chosen
    finally:
        for process in chosen.processes.values():
            if process.alive:
                process.kill()
