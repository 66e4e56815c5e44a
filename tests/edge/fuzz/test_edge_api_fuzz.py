"""Property-based fuzzing of the edge API from its own OpenAPI document.

Edge, the real inventory and orders (``memory://`` stores, one in-memory bus) and the fakes
of profiles and notifications each listen on a real port in this test's event loop; the
schemathesis CLI (another process) fuzzes edge with every check on, once with a customer's
token and once with staff's: no 5xx, every answer as documented, no auth ignored. The
stateful phase chains operations along the document's links (place an order, then read,
cancel or ship it) and the ones schemathesis infers.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.edge.conftest import SERVICE_TOKEN, edge_settings, token
from tests.edge.fakes import notifications_app, profiles_app
from tests.fuzzing import PHASES, stateful_links

from stockflow.edge.bootstrap import build as build_edge
from stockflow.inventory.bootstrap import build as build_inventory
from stockflow.inventory.settings import InventorySettings
from stockflow.orders.bootstrap import build as build_orders
from stockflow.orders.settings import OrdersSettings
from stockflow.platform.http_server import HttpServer, bind_port
from stockflow_kit.messaging import InMemoryBus

pytestmark = pytest.mark.slow

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
ORDER_LINKS = 5  # POST /orders -> get, cancel, ship; GET /orders/{order_id} -> cancel, ship


async def serve(app: Any, servers: list[tuple[HttpServer, asyncio.Task[None]]]) -> str:
    server = HttpServer(app, bind_port("127.0.0.1", 0, service="fuzz"))
    task = asyncio.create_task(server.run_on_socket())
    servers.append((server, task))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
async def edge_url(bus: InMemoryBus) -> AsyncIterator[str]:
    common = {"bus_url": "memory://", "batch_wait": 0.01, "service_token": SERVICE_TOKEN}
    inventory = build_inventory(InventorySettings(event_store_url="memory://", **common), bus=bus)  # type: ignore[arg-type]
    orders = build_orders(OrdersSettings(database_url="memory://", **common), bus=bus)  # type: ignore[arg-type]
    await inventory.start()
    await orders.start()
    servers: list[tuple[HttpServer, asyncio.Task[None]]] = []
    edge = None
    try:
        urls = {
            "inventory_url": await serve(inventory.app, servers),
            "orders_url": await serve(orders.app, servers),
            "profiles_url": await serve(profiles_app(SERVICE_TOKEN)[0], servers),
            "notifications_url": await serve(notifications_app(SERVICE_TOKEN)[0], servers),
        }
        edge = build_edge(edge_settings(rate_limit="100000/second", **urls))
        await edge.start()
        yield await serve(edge.app, servers)
    finally:
        for server, _task in servers:
            server.should_exit = True
        await asyncio.gather(*(task for _server, task in servers), return_exceptions=True)
        if edge is not None:
            await edge.stop()
        await orders.stop()
        await inventory.stop()


@pytest.mark.parametrize("role", ["customer", "staff"])
async def test_the_edge_api_does_what_its_openapi_document_says(
    edge_url: str, role: str, tmp_path: Path
) -> None:
    # A stale If-Match (412) is a right answer to a schema-valid PUT /me: accepted too.
    (tmp_path / "schemathesis.toml").write_text(
        "[checks.positive_data_acceptance]\n"
        'expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "429"]\n'
    )
    fuzz = await asyncio.create_subprocess_exec(
        SCHEMATHESIS,
        "run",
        f"{edge_url}/openapi.json",
        "--checks",
        "all",
        *PHASES,
        "--max-examples",
        "25",
        "--seed",
        "7",
        "--header",
        f"Authorization: Bearer {token(f'fuzz-{role}', role, ttl=3600)}",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    out, err = await asyncio.wait_for(fuzz.communicate(), timeout=400)
    stdout = out.decode()
    (tmp_path / "schemathesis.out").write_text(stdout)
    assert fuzz.returncode == 0, stdout[-8000:] + err.decode()[-2000:]
    assert "passed" in stdout.lower()
    # The stateful phase ran on the document's links (and the ones schemathesis infers) and
    # followed some. Not all: staff may not place orders, and which of the 18 links a run
    # reaches depends on the answers (tests/orders/fuzz checks that each orders link is
    # followed; the component tests follow them by hand).
    links = stateful_links(stdout)
    assert links.declared == ORDER_LINKS, links
    assert links.covered >= 1, links
