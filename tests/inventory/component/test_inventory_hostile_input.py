"""Hostile input at the inventory's HTTP API, answered with 4xx problems (issue: hardening)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from tests.inventory.component.test_inventory_http import TOKEN, assert_problem

from stockflow.inventory.bootstrap import InventoryService


@pytest.fixture
async def client(service: InventoryService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://inventory", headers=TOKEN
    ) as client:
        yield client


async def receive(client: httpx.AsyncClient, sku: str, qty: int, key: str) -> httpx.Response:
    return await client.post(
        f"/inventory/{sku}/receipts", json={"qty": qty}, headers={"Idempotency-Key": key}
    )


async def test_a_key_of_a_receipt_does_not_answer_an_internal_reservation(
    client: httpx.AsyncClient,
) -> None:
    assert (await receive(client, "A", 5, "K")).status_code == 201
    reserved = await client.post(
        "/internal/reservations",
        json={"order_id": "o-1", "lines": [{"sku": "A", "qty": 2}]},
        headers={**TOKEN, "Idempotency-Key": "K"},
    )
    assert reserved.status_code == 200, reserved.text
    assert reserved.json()["duplicate"] is False
    assert reserved.json()["status"] == "reserved"
    assert (await client.get("/inventory/A")).json()["reserved"] == 2


async def test_an_internal_key_reused_with_another_body_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    assert (await receive(client, "A", 5, "po")).status_code == 201
    body = {"order_id": "o-1", "lines": [{"sku": "A", "qty": 2}]}
    headers = {**TOKEN, "Idempotency-Key": "r-1"}
    first = await client.post("/internal/reservations", json=body, headers=headers)
    again = await client.post("/internal/reservations", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["duplicate"] is True
    other = {"order_id": "o-2", "lines": [{"sku": "A", "qty": 1}]}
    assert_problem(await client.post("/internal/reservations", json=other, headers=headers), 409)


async def test_the_same_key_on_two_skus_is_a_conflict_not_a_replay(
    client: httpx.AsyncClient,
) -> None:
    assert (await receive(client, "A", 5, "K")).status_code == 201
    assert_problem(await receive(client, "B", 5, "K"), 409)
    assert (await receive(client, "A", 5, "K")).json()["on_hand"] == 5


@pytest.mark.parametrize("after", ["9223372036854775808", str(10**30), "-1"])
async def test_an_event_position_out_of_bounds_is_a_422(
    client: httpx.AsyncClient, after: str
) -> None:
    assert (await receive(client, "A", 5, "po")).status_code == 201
    assert_problem(await client.get(f"/inventory/A/events?after={after}"), 422)


async def test_a_sku_that_is_not_valid_utf8_is_refused(client: httpx.AsyncClient) -> None:
    assert (await receive(client, "Z", 5, "po")).status_code == 201
    response = await client.post("/inventory/Z%FE/receipts", json={"qty": 1})
    assert 400 <= response.status_code < 500
    assert (await client.get("/inventory/Z")).json()["on_hand"] == 5


async def test_a_sku_in_a_reservation_body_follows_the_one_sku_rule(
    client: httpx.AsyncClient,
) -> None:
    body = {"order_id": "o-1", "lines": [{"sku": "S" * 5000, "qty": 1}]}
    response = await client.post("/internal/reservations", json=body, headers=TOKEN)
    assert_problem(response, 422)


async def test_a_body_that_is_not_json_is_a_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/inventory/A/receipts", content=b'{"qty": 1}', headers={"content-type": "text/plain"}
    )
    assert_problem(response, 415)


async def test_the_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient) -> None:
    token = TOKEN["Authorization"].split(" ", 1)[1]
    body = {"order_id": "o-1", "lines": [{"sku": "A", "qty": 1}]}
    response = await client.post(
        "/internal/reservations", json=body, headers={"Authorization": f"bearer {token}"}
    )
    assert response.status_code == 200, response.text
    wrong = await client.post(
        "/internal/reservations", json=body, headers={"Authorization": "bearer nope"}
    )
    assert_problem(wrong, 401)


async def test_the_host_header_is_never_reflected_into_a_redirect(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/inventory/A/", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "evil.example" not in response.headers.get("location", "")


async def test_the_openapi_document_describes_bodies_headers_and_problems(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    receipts = document["paths"]["/inventory/{sku}/receipts"]["post"]
    schema = receipts["requestBody"]["content"]["application/json"]["schema"]
    assert {"qty"} <= set(schema["properties"])
    assert "Idempotency-Key" in {p["name"] for p in receipts["parameters"]}
    assert {"409", "413", "415", "422"} <= set(receipts["responses"])
    internal = document["paths"]["/internal/reservations"]["post"]
    assert internal["security"] == [{"serviceCredential": []}]
    assert "serviceCredential" in document["components"]["securitySchemes"]


async def test_a_rejected_reservation_of_an_unknown_sku_creates_no_stock(
    client: httpx.AsyncClient, service: InventoryService
) -> None:
    body = {"order_id": "o-1", "lines": [{"sku": "NOPE", "qty": 1}]}
    reserved = await client.post("/internal/reservations", json=body, headers=TOKEN)
    assert reserved.json()["status"] == "rejected"
    assert_problem(await client.get("/inventory/NOPE"), 404)
    assert await service.store.get_stock("NOPE") is None
    events = (await client.get("/inventory/NOPE/events")).json()["events"]
    assert [e["type"] for e in events] == ["ReservationRejected"]  # the fact is kept
    assert (await receive(client, "NOPE", 2, "po")).json()["version"] == 2
    assert (await client.get("/inventory/NOPE")).json()["on_hand"] == 2


async def test_a_whole_number_written_with_a_fraction_is_that_number(
    client: httpx.AsyncClient,
) -> None:
    """JSON (and the published schema) do not tell 3 from 3.0; 3.5 stays invalid."""
    created = await client.post("/inventory/A/receipts", json={"qty": 3.0})
    assert created.status_code == 201, created.text
    assert created.json()["on_hand"] == 3
    assert_problem(await client.post("/inventory/A/receipts", json={"qty": 3.5}), 422)
    assert_problem(await client.post("/inventory/A/receipts", json={"qty": "3"}), 422)


async def test_a_sku_named_twice_in_a_release_is_released_once(
    client: httpx.AsyncClient, service: InventoryService
) -> None:
    """Found by schemathesis: the second release of one SKU raised inside the writer's loop
    and stopped the writer (every later write answered 503)."""
    assert (await receive(client, "A", 5, "po")).status_code == 201
    body = {"order_id": "o-1", "lines": [{"sku": "A", "qty": 2}]}
    assert (await client.post("/internal/reservations", json=body, headers=TOKEN)).is_success
    released = await client.post(
        "/internal/reservations/o-1/release", json={"skus": ["A", "A"]}, headers=TOKEN
    )
    assert released.status_code == 200, released.text
    assert [e["type"] for e in released.json()["events"]] == ["ReservationReleased"]
    assert service.writer.running
    assert (await receive(client, "A", 1, "po-2")).status_code == 201
    assert (await client.get("/inventory/A")).json() | {"version": 0} == {
        "sku": "A",
        "on_hand": 6,
        "reserved": 0,
        "available": 6,
        "version": 0,
    }
