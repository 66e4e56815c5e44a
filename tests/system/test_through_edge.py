"""End to end through edge, embedded and distributed: what a client of API.md can do and see.

Every test uses users and SKUs of its own (the system is shared by the module) and ends with
no 5xx in the logs and a clean audit (the ``audited`` fixture).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.system.system import System

from stockflow.contracts.inventory_commands import EVENTS_TOPIC
from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow_kit.messaging import make_bus

pytestmark = pytest.mark.usefixtures("audited")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def receive(http: httpx.AsyncClient, system: System, sku: str, qty: int) -> None:
    response = await http.post(
        f"{system.url()}/inventory/{sku}/receipts",
        json={"qty": qty, "reference": "test"},
        headers={**system.auth("staff-1", "staff"), "Idempotency-Key": unique("r")},
    )
    assert response.status_code == 201, response.text


async def place(
    http: httpx.AsyncClient, system: System, user: str, lines: list[dict[str, Any]], key: str = ""
) -> httpx.Response:
    headers = {**system.auth(user), "Idempotency-Key": key or unique("o")}
    return await http.post(f"{system.url()}/orders", json={"lines": lines}, headers=headers)


async def settled(
    http: httpx.AsyncClient, system: System, user: str, order_id: str, within: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        response = await http.get(f"{system.url()}/orders/{order_id}", headers=system.auth(user))
        if response.status_code == 503 and "Retry-After" in response.headers:
            # Edge's breaker to orders is open (orders was down a moment ago): a client waits
            # as told and asks again; the deadline still bounds it.
            assert time.monotonic() < deadline, f"{order_id}: still 503 after {within} s"
            await asyncio.sleep(min(float(response.headers["Retry-After"]), 1.0))
            continue
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] != "PENDING":
            return body
        assert time.monotonic() < deadline, f"{order_id} still PENDING after {within} s"
        await asyncio.sleep(0.1)


async def test_an_oversell_attempt_confirms_only_what_is_in_stock(
    system: System, http: httpx.AsyncClient
) -> None:
    sku = unique("OVERSELL")
    await receive(http, system, sku, 3)
    answers = await asyncio.gather(
        *(place(http, system, f"buyer-{i}", [{"sku": sku, "qty": 1}]) for i in range(8))
    )
    assert [a.status_code for a in answers] == [202] * 8
    orders = [
        await settled(http, system, f"buyer-{i}", a.json()["id"]) for i, a in enumerate(answers)
    ]
    statuses = sorted(o["status"] for o in orders)
    assert statuses == ["CONFIRMED"] * 3 + ["REJECTED"] * 5
    assert {o.get("reason") for o in orders if o["status"] == "REJECTED"} == {"insufficient_stock"}
    stock = (await http.get(f"{system.url()}/inventory/{sku}", headers=system.auth("x"))).json()
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (3, 3, 0)


async def test_a_replayed_placement_is_the_same_order_and_another_body_is_refused(
    system: System, http: httpx.AsyncClient
) -> None:
    sku = unique("REPLAY")
    await receive(http, system, sku, 10)
    lines = [{"sku": sku, "qty": 2}]
    first = await place(http, system, "replayer", lines, key="k-1")
    again = await place(http, system, "replayer", lines, key="k-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = await place(http, system, "replayer", [{"sku": sku, "qty": 3}], key="k-1")
    assert other.status_code in (409, 422), other.text
    assert other.headers["content-type"].startswith("application/problem+json")
    await settled(http, system, "replayer", first.json()["id"])
    stock = (await http.get(f"{system.url()}/inventory/{sku}", headers=system.auth("x"))).json()
    assert stock["reserved"] == 2


async def test_cancel_releases_and_ship_commits_both_idempotent(
    system: System, http: httpx.AsyncClient
) -> None:
    sku = unique("LIFE")
    await receive(http, system, sku, 10)
    staff = system.auth("staff-1", "staff")
    to_cancel = (await place(http, system, "carol", [{"sku": sku, "qty": 2}])).json()["id"]
    to_ship = (await place(http, system, "carol", [{"sku": sku, "qty": 3}])).json()["id"]
    assert (await settled(http, system, "carol", to_cancel))["status"] == "CONFIRMED"
    assert (await settled(http, system, "carol", to_ship))["status"] == "CONFIRMED"
    for _ in range(2):  # idempotent: the second call answers the same
        cancel = await http.post(
            f"{system.url()}/orders/{to_cancel}/cancel", headers=system.auth("carol")
        )
        assert cancel.status_code == 200, cancel.text
        assert cancel.json()["status"] == "CANCELLED"
        ship = await http.post(f"{system.url()}/orders/{to_ship}/ship", headers=staff)
        assert ship.status_code == 200, ship.text
        assert ship.json()["status"] == "SHIPPED"
    customer_ship = await http.post(
        f"{system.url()}/orders/{to_cancel}/ship", headers=system.auth("carol")
    )
    assert customer_ship.status_code == 403, customer_ship.text

    async def stock() -> dict[str, Any]:
        response = await http.get(f"{system.url()}/inventory/{sku}", headers=staff)
        body: dict[str, Any] = response.json()
        return body

    deadline = time.monotonic() + 30
    while (s := await stock())["reserved"] != 0:
        assert time.monotonic() < deadline, s
        await asyncio.sleep(0.1)
    assert (s["on_hand"], s["available"]) == (7, 7)


async def test_a_customer_guessing_another_customers_ids_gets_404(
    system: System, http: httpx.AsyncClient
) -> None:
    sku = unique("OWN")
    await receive(http, system, sku, 5)
    dave, erin = unique("dave"), unique("erin")
    order_id = (await place(http, system, dave, [{"sku": sku, "qty": 1}])).json()["id"]
    await settled(http, system, dave, order_id)
    put = await http.put(
        f"{system.url()}/me",
        json={"name": "Dave", "email": "dave@example.com"},
        headers=system.auth(dave),
    )
    assert put.status_code == 200, put.text
    theirs = system.auth(erin)
    for method, path in [
        ("GET", f"/orders/{order_id}"),
        ("POST", f"/orders/{order_id}/cancel"),
    ]:
        response = await http.request(method, f"{system.url()}{path}", headers=theirs)
        assert response.status_code == 404, (path, response.text)
        assert dave not in response.text
        assert sku not in response.text
    listed = (await http.get(f"{system.url()}/orders", headers=theirs)).json()
    assert listed["orders"] == []
    mine = await http.get(f"{system.url()}/me", headers=theirs)
    assert dave not in mine.text
    staff = await http.get(f"{system.url()}/orders/{order_id}", headers=system.auth("s", "staff"))
    assert staff.status_code == 200


MALFORMED: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("POST", "/orders", {"content-type": "application/json"}, b"{bad json"),
    ("POST", "/orders", {"content-type": "application/json"}, b'{"lines": []}'),
    (
        "POST",
        "/orders",
        {"content-type": "application/json"},
        b'{"lines": [{"sku": "A", "qty": -1}]}',
    ),
    ("POST", "/orders", {"content-type": "application/json"}, b'{"lines": "x"}'),
    ("POST", "/orders", {"content-type": "text/plain"}, b"lines"),
    ("POST", "/orders", {"content-type": "application/json"}, b"[" * 10_000),
    (
        "POST",
        "/orders",
        {"content-type": "application/json"},
        b'{"lines": [{"sku": "A", "qty": 1}], "x": 1}',
    ),
    ("POST", "/orders", {"content-type": "application/json"}, b"x" * 2_000_000),
    ("GET", "/orders/%00%ff", {}, None),
    ("GET", "/orders?limit=-5", {}, None),
    ("GET", "/orders?cursor=%27%3B--", {}, None),
    ("GET", "/inventory/" + "A" * 5000, {}, None),
    ("PUT", "/me", {"content-type": "application/json"}, b'{"email": "not an email"}'),
    ("PUT", "/me", {"content-type": "application/json"}, b'{"addresses": [{}]}'),
    ("POST", "/inventory/SKU-1/receipts", {"content-type": "application/json"}, b'{"qty": 1}'),
    ("DELETE", "/orders", {}, None),
    ("GET", "/no/such/route", {}, None),
]


async def test_malformed_input_of_every_kind_gets_a_4xx_problem(
    system: System, http: httpx.AsyncClient
) -> None:
    customer = system.auth(unique("fuzzy"))
    for method, path, headers, body in MALFORMED:
        response = await http.request(
            method,
            f"{system.url()}{path}",
            headers={**customer, "Idempotency-Key": unique("m"), **headers},
            content=body,
        )
        assert 400 <= response.status_code < 500, (
            method,
            path,
            response.status_code,
            response.text,
        )
        assert response.headers["content-type"].startswith("application/problem+json"), path
        problem = response.json()
        assert {"type", "title", "status", "detail", "correlation_id"} <= problem.keys(), problem
    for headers in [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}]:
        response = await http.get(f"{system.url()}/orders", headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_the_correlation_id_comes_back_and_reaches_the_order(
    system: System, http: httpx.AsyncClient
) -> None:
    sku = unique("CORR")
    await receive(http, system, sku, 1)
    correlation = f"test-{uuid.uuid4().hex}"
    response = await http.post(
        f"{system.url()}/orders",
        json={"lines": [{"sku": sku, "qty": 1}]},
        headers={
            **system.auth("frank"),
            "Idempotency-Key": unique("o"),
            "X-Correlation-ID": correlation,
        },
    )
    assert response.status_code == 202
    assert response.headers["x-correlation-id"] == correlation
    order_id = response.json()["id"]
    await settled(http, system, "frank", order_id)
    lines = [line for line in system.tail(10**9).splitlines() if correlation in line]
    assert any('"service":"edge"' in line.replace(" ", "") for line in lines), lines[:5]
    # Forwarded on every hop: edge -> orders (HTTP) -> OrderPlaced -> inventory -> StockReserved
    # -> orders -> OrderConfirmed, each message carrying the request's correlation id.
    bus = make_bus(system.bus_url, name="test-correlation")
    await bus.start()
    seen: dict[str, str | None] = {}
    try:
        for topic in (ORDERS_EVENTS_TOPIC, EVENTS_TOPIC):
            subscription = await bus.subscribe(topic, unique("corr"))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                batch = await subscription.fetch(1000, max_wait=0.5)
                if not batch:
                    break
                for delivery in batch:
                    e = delivery.envelope
                    if e.subject in (order_id, sku):
                        seen[e.type] = e.correlation_id
                await subscription.ack(batch)
            await subscription.close()
    finally:
        await bus.close()
    for event in ("OrderPlaced", "StockReserved", "OrderConfirmed"):
        assert seen.get(event) == correlation, seen
