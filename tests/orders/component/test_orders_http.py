"""The orders HTTP API in-process: who may see and do what, pages, and refused input."""

from __future__ import annotations

import pytest
from tests.openapi_links import follow
from tests.orders.conftest import AUTH, STAFF, System, customer


async def test_a_customer_sees_only_their_own_orders(system: System) -> None:
    await system.receive("SKU-1", 10)
    mine = (await system.place([{"sku": "SKU-1", "qty": 1}], user="alice")).json()["id"]
    theirs = (await system.place([{"sku": "SKU-1", "qty": 1}], user="bob")).json()["id"]

    assert (
        await system.orders_http.get(f"/orders/{mine}", headers=customer("alice"))
    ).status_code == 200
    hidden = await system.orders_http.get(f"/orders/{theirs}", headers=customer("alice"))
    assert hidden.status_code == 404
    assert hidden.json()["detail"] == f"no order {theirs!r}"
    cancel = await system.orders_http.post(f"/orders/{theirs}/cancel", headers=customer("alice"))
    assert cancel.status_code == 404

    listed = (await system.orders_http.get("/orders", headers=customer("alice"))).json()
    assert [o["id"] for o in listed["orders"]] == [mine]
    everyone = (await system.orders_http.get("/orders", headers=STAFF)).json()
    assert {o["id"] for o in everyone["orders"]} == {mine, theirs}


async def test_only_staff_ship(system: System) -> None:
    await system.receive("SKU-1", 10)
    order_id = (await system.place([{"sku": "SKU-1", "qty": 1}])).json()["id"]
    await system.settled(order_id)
    refused = await system.orders_http.post(f"/orders/{order_id}/ship", headers=customer("alice"))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"


async def test_a_pending_order_cannot_be_shipped_or_cancelled(system: System) -> None:
    # No stock was ever received and the inventory answers at once, so wait for the answer
    # and try on a REJECTED order: both are refused with 409.
    order_id = (await system.place([{"sku": "SKU-404", "qty": 1}])).json()["id"]
    assert (await system.settled(order_id))["status"] == "REJECTED"
    for action in ("cancel", "ship"):
        response = await system.orders_http.post(f"/orders/{order_id}/{action}", headers=STAFF)
        assert response.status_code == 409, response.text
        assert "REJECTED" in response.json()["detail"]


async def test_orders_are_listed_newest_first_in_pages(system: System) -> None:
    await system.receive("SKU-1", 100)
    placed = [
        (await system.place([{"sku": "SKU-1", "qty": 1}], key=f"page-{n}")).json()["id"]
        for n in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (
            await system.orders_http.get("/orders", params=params, headers=customer("alice"))
        ).json()
        seen += [o["id"] for o in page["orders"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == list(reversed(placed))


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, {"lines": [{"sku": "SKU-1", "qty": 1}]}, 401),
        ({**AUTH, "Idempotency-Key": "k"}, {"lines": [{"sku": "SKU-1", "qty": 1}]}, 422),
        (customer("alice"), {"lines": [{"sku": "SKU-1", "qty": 1}]}, 400),
        ({**customer("alice"), "Idempotency-Key": "k"}, {"lines": []}, 422),
        (
            {**customer("alice"), "Idempotency-Key": "k"},
            {"lines": [{"sku": "bad sku", "qty": 1}]},
            422,
        ),
        ({**customer("alice"), "Idempotency-Key": "k"}, {"lines": [{"sku": "S", "qty": 0}]}, 422),
        (
            {**customer("alice"), "Idempotency-Key": "k"},
            {"lines": [{"sku": "S", "qty": 1, "x": 1}]},
            422,
        ),
        (
            {**customer("alice"), "Idempotency-Key": "k", "X-Stockflow-Role": "admin"},
            {"lines": [{"sku": "S", "qty": 1}]},
            422,
        ),
    ],
)
async def test_bad_placements_are_refused_with_a_problem(
    system: System, headers: dict[str, str], body: object, status: int
) -> None:
    response = await system.orders_http.post("/orders", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["correlation_id"]


async def test_a_body_that_is_not_json_is_refused(system: System) -> None:
    headers = {**customer("alice"), "Idempotency-Key": "k", "Content-Type": "application/json"}
    response = await system.orders_http.post("/orders", content=b"{not json", headers=headers)
    assert response.status_code == 422
    form = await system.orders_http.post(
        "/orders", content=b"a=b", headers={**headers, "Content-Type": "text/plain"}
    )
    assert form.status_code == 415


async def test_a_cursor_naming_no_visible_order_is_a_404(system: System) -> None:
    await system.receive("SKU-1", 10)
    theirs = (await system.place([{"sku": "SKU-1", "qty": 1}], user="bob")).json()["id"]
    unknown = await system.orders_http.get("/orders", params={"cursor": "nope"}, headers=STAFF)
    assert unknown.status_code == 404
    hidden = await system.orders_http.get(
        "/orders", params={"cursor": theirs}, headers=customer("alice")
    )
    assert hidden.status_code == 404
    malformed = await system.orders_http.get("/orders", params={"cursor": "!!"}, headers=STAFF)
    assert malformed.status_code == 422


async def test_the_openapi_document_declares_the_credential_and_the_key(system: System) -> None:
    spec = (await system.orders_http.get("/openapi.json")).json()
    post = spec["paths"]["/orders"]["post"]
    assert post["security"] == [{"serviceCredential": []}]
    key = next(p for p in post["parameters"] if p["name"] == "Idempotency-Key")
    assert key["required"] is True


async def test_the_openapi_links_lead_from_a_placed_order_to_reading_cancelling_shipping_it(
    system: System,
) -> None:
    """The links schemathesis' stateful phase follows: POST /orders -> GET, cancel, ship."""
    spec = (await system.orders_http.get("/openapi.json")).json()
    await system.receive("SKU-1", 10)
    placed = await system.place([{"sku": "SKU-1", "qty": 1}])
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    links = follow(spec, "/orders", "post", 202, placed.json())
    assert links == {
        "GetOrder": ("GET", f"/orders/{order_id}"),
        "CancelOrder": ("POST", f"/orders/{order_id}/cancel"),
        "ShipOrder": ("POST", f"/orders/{order_id}/ship"),
    }
    await system.settled(order_id)
    read = await system.orders_http.request(*links["GetOrder"], headers=customer("alice"))
    assert (read.status_code, read.json()["status"]) == (200, "CONFIRMED")
    then = follow(spec, "/orders/{order_id}", "get", 200, read.json())
    assert then == {key: links[key] for key in ("CancelOrder", "ShipOrder")}
    shipped = await system.orders_http.request(*then["ShipOrder"], headers=STAFF)
    assert (shipped.status_code, shipped.json()["status"]) == (200, "SHIPPED"), shipped.text
