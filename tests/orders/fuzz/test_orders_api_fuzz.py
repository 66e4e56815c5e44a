"""Property-based fuzzing of the orders HTTP API from its own OpenAPI schema.

Schemathesis generates requests from ``/openapi.json`` against a real ``stockflow serve
orders`` process (SQLite + SqliteLogBus in a temp dir) with every check on: no 5xx, every
response as documented, and schema-valid requests accepted. The credential and a customer
identity are sent on every request (as edge does), so the bodies and the paths are reached.
The stateful phase follows the document's links: it places orders, then reads, cancels and
ships them (every declared link followed at least once).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from tests.fuzzing import assert_openapi_holds

from stockflow_kit.lifecycle import ServiceProcess

pytestmark = pytest.mark.slow

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
TOKEN = "fuzz-service-token"


async def test_the_orders_api_does_what_its_openapi_document_says(tmp_path: Path) -> None:
    process = ServiceProcess(
        [STOCKFLOW, "serve", "orders"],
        name="orders",
        env={
            **os.environ,
            "ORDERS_DATABASE_URL": f"sqlite:///{tmp_path}/orders.sqlite3",
            "BUS_URL": f"sqlite:///{tmp_path}/bus.sqlite3",
            "ORDERS_SERVICE_TOKEN": TOKEN,
            "STOCKFLOW_LOG_FORMAT": "json",
        },
        port_env="ORDERS_PORT",
        log=tmp_path / "orders.log",
    )
    process.start()
    try:
        await process.wait_ready(within=60)
        assert_openapi_holds(
            process.base_url,
            headers={"Authorization": f"Bearer {TOKEN}", "X-Stockflow-User": "fuzzer"},
            log=process.log,
            workdir=tmp_path,
            links=5,  # POST /orders -> get, cancel, ship; GET /orders/{order_id} -> cancel, ship
        )
    finally:
        process.terminate()
