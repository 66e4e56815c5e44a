"""Invariant 5 on the distributed deployment: an orders database of its own on PostgreSQL
(created and dropped by the test, table written with raw SQL) against an event store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from tests.audit.conftest import NOW, order_row
from tests.audit.postgres_store import write_store
from typer.testing import CliRunner, Result

from stockflow.audit import Check, audit_url
from stockflow.runtime.cli import app

pytestmark = pytest.mark.integration

ORDERS_DDL = """
CREATE TABLE orders (
    id varchar(100) PRIMARY KEY, customer_id varchar(200) NOT NULL, status varchar(16) NOT NULL,
    reason text, lines json NOT NULL, reserved json NOT NULL,
    created_at double precision NOT NULL, updated_at double precision NOT NULL,
    expires_at double precision NOT NULL, version integer NOT NULL
)
"""

EVENTS = [
    ("A", 1, "StockReceived", {"qty": 10}),
    ("A", 2, "StockReserved", {"order_id": "o1", "qty": 2}),
    ("A", 3, "StockReserved", {"order_id": "o2", "qty": 1}),
    ("A", 4, "StockShipped", {"order_id": "o2", "qty": 1}),
    ("B", 1, "StockReceived", {"qty": 5}),
    ("B", 2, "StockReserved", {"order_id": "o3", "qty": 1}),
    ("B", 3, "StockReserved", {"order_id": "direct", "qty": 1}),
]
STOCK = [("A", 9, 2, 4), ("B", 5, 2, 3)]


async def _sql(url: str, sql: str, rows: list[tuple[object, ...]] | None = None) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
        if rows:
            await conn.executemany(
                "INSERT INTO orders VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", rows
            )
    finally:
        await conn.close()


def audit_cli(store_url: str, schema: str, orders_url: str) -> Result:
    args = ["--event-store-url", store_url, "--schema", schema, "--orders-url", orders_url]
    return CliRunner().invoke(app, ["audit", *args])


@pytest.fixture
def orders_url(postgres_url: str) -> Iterator[str]:
    """An empty database of its own, as the orders service's would be before its migration."""
    name = f"stockflow_audit_orders_{uuid.uuid4().hex[:12]}"
    asyncio.run(_sql(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        yield urlsplit(postgres_url)._replace(path=f"/{name}").geturl()
    finally:
        asyncio.run(_sql(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def store_schema(postgres_url: str) -> str:
    schema = f"audit_{uuid.uuid4().hex[:10]}"
    asyncio.run(write_store(postgres_url, schema, EVENTS, STOCK))
    return schema


def test_orders_in_postgres_are_checked_against_the_event_store(
    postgres_url: str, orders_url: str, store_schema: str
) -> None:
    rows = [
        order_row("o1", "CONFIRMED", [("A", 2)], NOW + 30),
        order_row("o2", "SHIPPED", [("A", 1)], NOW - 600),
        order_row("o3", "CANCELLED", [("B", 1)], NOW - 600),
        order_row("o4", "PENDING", [("B", 1)], NOW - 60),
    ]
    asyncio.run(_sql(orders_url, ORDERS_DDL, rows))

    report = audit_url(postgres_url, schema=store_schema, orders_url=orders_url, now=NOW)

    assert {check for check, n in report.counts.items() if n} == {Check.ORDERS}
    assert [(v.order_id, v.detail.split(" past")[0]) for v in report.violations] == [
        ("o3", "CANCELLED: holds {B: 1}, expected nothing"),
        ("o4", "PENDING 60.0 s"),
    ]
    assert (report.orders.orders, report.orders.unknown_reservations) == (4, 1)
    assert report.orders.source is not None
    assert report.orders.source.endswith(f"{urlsplit(orders_url).path} (public)")
    result = audit_cli(postgres_url, store_schema, orders_url)
    assert result.exit_code == 1, result.output


def test_an_orders_database_that_does_not_exist_is_not_checked_and_one_without_the_table_fails(
    postgres_url: str, orders_url: str, store_schema: str
) -> None:
    missing = urlsplit(postgres_url)._replace(path="/stockflow_no_such_orders").geturl()
    report = audit_url(postgres_url, schema=store_schema, orders_url=missing, now=NOW)
    assert report.ok
    assert report.orders.not_checked == (
        "no orders database (database postgresql://127.0.0.1/stockflow_no_such_orders"
        " does not exist)"
    )
    result = audit_cli(postgres_url, store_schema, orders_url)
    assert result.exit_code == 2
    assert "no orders table in schema 'public'" in result.output.replace("\n", " ")
