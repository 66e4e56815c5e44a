"""The inventory HTTP API in-process (httpx.ASGITransport) on memory:// adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from tests.inventory.conftest import SERVICE_TOKEN

from stockflow.inventory.bootstrap import InventoryService

TOKEN = {"Authorization": f"Bearer {SERVICE_TOKEN}"}


@pytest.fixture
async def client(service: InventoryService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://inventory", headers=TOKEN
    ) as client:
        yield client


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert {"type", "title", "status", "detail", "correlation_id"} <= body.keys()
    return body


async def test_probes_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    assert "inventory_commands_total" in (await client.get("/metrics")).text


async def test_readyz_is_a_503_problem_before_the_service_started() -> None:
    from tests.inventory.conftest import memory_settings

    from stockflow.inventory.bootstrap import build
    from stockflow_kit.messaging import InMemoryBus

    service = build(memory_settings(), bus=InMemoryBus())
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://i") as client:
        assert_problem(await client.get("/readyz"), 503)


async def test_a_receipt_is_reflected_in_the_stock_view(client: httpx.AsyncClient) -> None:
    created = await client.post("/inventory/A/receipts", json={"qty": 7, "reference": "po"})
    assert created.status_code == 201
    expected = {"sku": "A", "on_hand": 7, "reserved": 0, "available": 7, "version": 1}
    assert created.json() == expected
    assert (await client.get("/inventory/A")).json() == expected


async def test_an_unknown_sku_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/inventory/NOPE"), 404)
    assert_problem(await client.get("/inventory/NOPE/events"), 404)


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 422),
        (b'{"qty": -3}', 422),
        (b'{"qty": 0}', 422),
        (b'{"qty": "three"}', 422),
        (b'{"qty": 99999999999999}', 422),
        (b"[]", 422),
        (b"", 422),
        (b'{"qty": 1, "pad": "' + b"x" * 100_000 + b'"}', 413),
    ],
)
async def test_malformed_receipts_are_4xx_problems(
    client: httpx.AsyncClient, content: bytes, status: int
) -> None:
    response = await client.post(
        "/inventory/A/receipts", content=content, headers={"content-type": "application/json"}
    )
    assert_problem(response, status)


async def test_unknown_routes_and_wrong_methods_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nowhere"), 404)
    assert_problem(await client.delete("/inventory/A"), 405)
    assert_problem(await client.get("/inventory/A/events?limit=0"), 422)


async def test_an_adjustment_below_reserved_is_a_409_problem(client: httpx.AsyncClient) -> None:
    await client.post("/inventory/A/receipts", json={"qty": 5})
    reserved = await client.post(
        "/internal/reservations",
        json={"order_id": "o-1", "lines": [{"sku": "A", "qty": 4}]},
        headers=TOKEN,
    )
    assert reserved.json()["status"] == "reserved"
    body = assert_problem(await client.post("/inventory/A/adjustments", json={"delta": -2}), 409)
    assert "reserved" in str(body["detail"])
    assert_problem(await client.post("/inventory/A/adjustments", json={"delta": 0}), 422)
    assert (await client.post("/inventory/A/adjustments", json={"delta": -1})).status_code == 201


async def test_an_idempotent_receipt_is_replayed_and_a_changed_body_conflicts(
    client: httpx.AsyncClient,
) -> None:
    key = {"Idempotency-Key": "receipt-1"}
    first = await client.post("/inventory/A/receipts", json={"qty": 3}, headers=key)
    replay = await client.post("/inventory/A/receipts", json={"qty": 3}, headers=key)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert first.json() == replay.json()
    assert (await client.get("/inventory/A")).json()["on_hand"] == 3
    assert_problem(await client.post("/inventory/A/receipts", json={"qty": 4}, headers=key), 409)
    assert_problem(
        await client.post(
            "/inventory/A/receipts", json={"qty": 3}, headers={"Idempotency-Key": ""}
        ),
        422,
    )


async def test_a_rejected_idempotent_adjustment_replays_its_problem(
    client: httpx.AsyncClient,
) -> None:
    key = {"Idempotency-Key": "adj-1"}
    first = await client.post("/inventory/A/adjustments", json={"delta": -1}, headers=key)
    replay = await client.post("/inventory/A/adjustments", json={"delta": -1}, headers=key)
    assert_problem(first, 409)
    assert_problem(replay, 409)


async def test_the_event_stream_pages_oldest_first(client: httpx.AsyncClient) -> None:
    for qty in range(1, 6):
        await client.post("/inventory/A/receipts", json={"qty": qty})
    page = (await client.get("/inventory/A/events?limit=2")).json()
    assert [e["data"]["qty"] for e in page["events"]] == [1, 2]
    page = (await client.get(f"/inventory/A/events?limit=2&after={page['next']}")).json()
    assert [e["sequence"] for e in page["events"]] == [3, 4]
    last = (await client.get(f"/inventory/A/events?limit=2&after={page['next']}")).json()
    assert ([e["sequence"] for e in last["events"]], last["next"]) == ([5], None)


async def test_internal_endpoints_need_the_service_credential(client: httpx.AsyncClient) -> None:
    order = {"order_id": "o-1", "lines": [{"sku": "A", "qty": 1}]}
    no_credential = {"Authorization": ""}
    assert_problem(
        await client.post("/internal/reservations", json=order, headers=no_credential), 401
    )
    wrong = {"Authorization": "Bearer nope"}
    assert_problem(await client.post("/internal/reservations", json=order, headers=wrong), 401)
    rejected = await client.post("/internal/reservations", json=order, headers=TOKEN)
    assert rejected.json()["status"] == "rejected"


async def test_release_and_ship_settle_a_reservation(client: httpx.AsyncClient) -> None:
    await client.post("/inventory/A/receipts", json={"qty": 20})
    for order in ("o-1", "o-2"):
        await client.post(
            "/internal/reservations",
            json={"order_id": order, "lines": [{"sku": "A", "qty": 2}]},
            headers=TOKEN,
        )
    url = "/internal/reservations/{}/{}"
    released = await client.post(url.format("o-1", "release"), json={"skus": ["A"]}, headers=TOKEN)
    shipped = await client.post(url.format("o-2", "ship"), json={"skus": ["A"]}, headers=TOKEN)
    again = await client.post(url.format("o-2", "ship"), json={"skus": ["A"]}, headers=TOKEN)
    assert [e["type"] for e in released.json()["events"]] == ["ReservationReleased"]
    assert [e["type"] for e in shipped.json()["events"]] == ["StockShipped"]
    assert again.json()["events"] == []
    view = (await client.get("/inventory/A")).json()
    assert (view["on_hand"], view["reserved"]) == (18, 0)
    assert_problem(
        await client.post(url.format("o-2", "ship"), json={"skus": []}, headers=TOKEN), 422
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/inventory/A"),
        ("GET", "/inventory/A/events"),
        ("POST", "/inventory/A/receipts"),
        ("POST", "/inventory/A/adjustments"),
    ],
)
async def test_the_stock_routes_refuse_a_caller_without_the_service_credential(
    service: InventoryService, method: str, path: str
) -> None:
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as anyone:
        await anyone.post("/inventory/A/receipts", json={"qty": 1}, headers=TOKEN)
        for headers in ({}, {"Authorization": "Bearer not-the-credential"}):
            response = await anyone.request(method, path, json={"qty": 1}, headers=headers)
            assert_problem(response, 401)
        assert (await anyone.get("/inventory/A", headers=TOKEN)).json()["on_hand"] == 1
