"""edge -> inventory (HTTP): a customer reads a SKU's stock, staff receive stock.

Consumer side: edge built through its bootstrap with ``inventory_url`` at the pact mock
server, called through its public API with a customer's and a staff member's JWT. Provider
side (``slow``): ``stockflow serve inventory`` as a process on a free port (SQLite event store,
SQLite bus), the state set up through inventory's own API (a receipt).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pact import Pact, Verifier, match
from tests.contracts.edge_consumer import edge_in_front_of
from tests.contracts.pactfiles import assert_committed, committed
from tests.contracts.providers import SERVICE_TOKEN, serving, verify
from tests.edge.conftest import bearer

CONSUMER = "edge"
PROVIDER = "inventory"
STATE_STOCKED = "SKU-1 has 5 on hand"
STATE_ANY = "SKU-2 may have stock or not"
READ = "a customer reads the stock of SKU-1"
RECEIVE = "staff receive 3 of SKU-2"


def stock_view(sku: str, on_hand: int) -> dict[str, object]:
    return {
        "sku": match.str(sku),
        "on_hand": match.int(on_hand),
        "reserved": match.int(0),
        "available": match.int(on_hand),
        "version": match.int(1),
    }


def service_headers(user: str, role: str) -> dict[str, object]:
    return {
        "Authorization": match.regex(f"Bearer {SERVICE_TOKEN}", regex=r"^Bearer \S+$"),
        "X-Stockflow-User": match.regex(user, regex=r"^\S+$"),
        "X-Stockflow-Role": match.regex(role, regex=r"^(customer|staff)$"),
    }


def edge_inventory_pact() -> Pact:
    pact = Pact(CONSUMER, PROVIDER).with_specification("V4")
    (
        pact.upon_receiving(READ)
        .given(STATE_STOCKED)
        .with_request("GET", "/inventory/SKU-1")
        .with_headers(service_headers("alice", "customer"))
        .will_respond_with(200)
        .with_body(stock_view("SKU-1", 5), content_type="application/json")
    )
    (
        pact.upon_receiving(RECEIVE)
        .given(STATE_ANY)
        .with_request("POST", "/inventory/SKU-2/receipts")
        .with_headers(service_headers("sam", "staff"))
        .with_body(
            {"qty": match.int(3), "reference": match.str("delivery-1")},
            content_type="application/json",
        )
        .will_respond_with(201)
        .with_body(stock_view("SKU-2", 3), content_type="application/json")
    )
    return pact


@pytest.fixture
async def pact_and_edge() -> AsyncIterator[tuple[Pact, httpx.AsyncClient]]:
    pact = edge_inventory_pact()
    async with edge_in_front_of(pact, "inventory") as http:
        yield pact, http


async def test_edge_inventory_pact_consumer(
    pact_and_edge: tuple[Pact, httpx.AsyncClient], tmp_path: Path
) -> None:
    pact, http = pact_and_edge
    read = await http.get("/inventory/SKU-1", headers=bearer("alice"))
    assert read.status_code == 200, read.text
    assert read.json()["available"] == 5
    received = await http.post(
        "/inventory/SKU-2/receipts",
        json={"qty": 3, "reference": "delivery-1"},
        headers=bearer("sam", "staff"),
    )
    assert received.status_code == 201, received.text
    assert received.json()["on_hand"] == 3
    assert_committed(pact, tmp_path, CONSUMER, PROVIDER)


@pytest.fixture(scope="module")
def inventory_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("pact-inventory")
    env = {"INVENTORY_EVENT_STORE_URL": f"sqlite:///{directory / 'inventory.sqlite3'}"}
    with serving("inventory", directory, env) as process:
        yield process.base_url


@pytest.mark.slow
def test_inventory_honours_the_edge_pact(inventory_url: str) -> None:
    def stocked(action: str, parameters: dict[str, Any] | None = None) -> None:
        del parameters
        if action == "setup":
            answer = httpx.post(
                f"{inventory_url}/inventory/SKU-1/receipts",
                json={"qty": 5, "reference": "pact-state"},
                headers={
                    "Authorization": f"Bearer {SERVICE_TOKEN}",
                    "X-Stockflow-User": "pact",
                    "X-Stockflow-Role": "staff",
                },
            )
            assert answer.status_code == 201, answer.text

    def anything(action: str, parameters: dict[str, Any] | None = None) -> None:
        del action, parameters  # a receipt is answered 201 with the stock, known SKU or not

    verifier = (
        Verifier(PROVIDER, host="127.0.0.1")
        .add_transport(url=inventory_url)
        .add_source(committed(CONSUMER, PROVIDER))
        .state_handler({STATE_STOCKED: stocked, STATE_ANY: anything}, teardown=True)
    )
    passed, output = verify(verifier)
    assert passed, output
    assert READ in output
    assert RECEIVE in output
