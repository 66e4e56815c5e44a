"""Consumer side of edge -> orders: the pact is generated from edge's REAL code.

Edge is built through its bootstrap with ``orders_url`` at the pact mock server, and the test
calls edge's public API as the customer alice (her JWT): place an order, read it, read bob's
order. The mock server checks every request edge makes against the expectations (the service
credential, the identity headers, the Idempotency-Key, the body) and answers with the examples;
edge's answers to the client are checked too, so the contract is what edge really relies on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pact import Pact, match
from tests.contracts import edge_orders as c
from tests.contracts.edge_consumer import edge_in_front_of
from tests.contracts.pactfiles import assert_committed
from tests.edge.conftest import SERVICE_TOKEN, bearer

UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"
STATUS = r"^(PENDING|CONFIRMED|REJECTED|SHIPPED|CANCELLED)$"


def service_headers(user: str, role: str = "customer") -> dict[str, object]:
    """What edge adds to every call to orders: the credential and the verified identity."""
    return {
        "Authorization": match.regex(f"Bearer {SERVICE_TOKEN}", regex=r"^Bearer \S+$"),
        "X-Stockflow-User": match.regex(user, regex=r"^\S+$"),
        "X-Stockflow-Role": match.regex(role, regex=r"^(customer|staff)$"),
    }


def order_body(order_id: str, customer: str) -> dict[str, object]:
    return {
        "id": match.str(order_id),
        "customer_id": match.str(customer),
        "status": match.regex("PENDING", regex=STATUS),
        "lines": match.each_like({"sku": match.str("SKU-1"), "qty": match.int(2)}, min=1),
        "created_at": match.regex("2026-01-01T00:00:00.000Z", regex=TIMESTAMP),
        "updated_at": match.regex("2026-01-01T00:00:00.000Z", regex=TIMESTAMP),
    }


def edge_orders_pact() -> Pact:
    pact = Pact(c.CONSUMER, c.PROVIDER).with_specification("V4")
    placed = c.order_id("alice", c.PLACE_KEY)
    (
        pact.upon_receiving("alice places an order")
        .given(c.STATE_NO_ORDERS)
        .with_request("POST", "/orders")
        .with_headers(service_headers("alice"))
        .with_header("Idempotency-Key", match.regex(c.PLACE_KEY, regex=r"^\S{1,255}$"))
        .with_body(
            {"lines": match.each_like({"sku": match.str("SKU-1"), "qty": match.int(2)}, min=1)},
            content_type="application/json",
        )
        .will_respond_with(202)
        .with_body(
            {"id": match.regex(placed, regex=UUID), "status": match.regex("PENDING", regex=STATUS)},
            content_type="application/json",
        )
    )
    readable = c.order_id("alice", c.READ_KEY)
    (
        pact.upon_receiving("alice reads her order")
        .given(c.STATE_ALICE_PLACED)
        .with_request("GET", f"/orders/{readable}")
        .with_headers(service_headers("alice"))
        .will_respond_with(200)
        .with_body(order_body(readable, "alice"), content_type="application/json")
    )
    others = c.order_id("bob", c.OTHERS_KEY)
    (
        pact.upon_receiving("alice reads bob's order")
        .given(c.STATE_BOB_PLACED)
        .with_request("GET", f"/orders/{others}")
        .with_headers(service_headers("alice"))
        .will_respond_with(404)
        .with_header(
            "Content-Type",
            match.regex("application/problem+json", regex=r"^application/problem\+json"),
        )
        .with_body({"status": match.int(404), "title": match.str("Unknown order")})
    )
    return pact


@pytest.fixture
async def pact_and_edge() -> AsyncIterator[tuple[Pact, httpx.AsyncClient]]:
    pact = edge_orders_pact()
    async with edge_in_front_of(pact, "orders") as http:
        yield pact, http


async def test_edge_orders_pact(
    pact_and_edge: tuple[Pact, httpx.AsyncClient], tmp_path: Path
) -> None:
    pact, http = pact_and_edge
    alice = bearer("alice")

    placed = await http.post(
        "/orders", json={"lines": c.LINES}, headers={**alice, "Idempotency-Key": c.PLACE_KEY}
    )
    assert placed.status_code == 202, placed.text
    assert placed.json()["id"] == c.order_id("alice", c.PLACE_KEY)

    mine = c.order_id("alice", c.READ_KEY)
    read = await http.get(f"/orders/{mine}", headers=alice)
    assert read.status_code == 200, read.text
    assert read.json()["customer_id"] == "alice"

    others = await http.get(f"/orders/{c.order_id('bob', c.OTHERS_KEY)}", headers=alice)
    assert others.status_code == 404, others.text

    assert_committed(pact, tmp_path, c.CONSUMER, c.PROVIDER)
