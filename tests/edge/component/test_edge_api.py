"""Edge in front of the real inventory and orders (and the fakes of profiles and
notifications): who may see and do what, and what passes through."""

from __future__ import annotations

import pytest
from tests.edge.conftest import STAFF, Edge, bearer
from tests.openapi_links import follow


def assert_problem(response: object, status: int) -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert {"type", "title", "status", "detail", "correlation_id"} <= body.keys()
    return body


async def test_a_request_without_a_token_is_a_401_with_a_bearer_challenge(edge: Edge) -> None:
    for path in ("/me", "/inventory/SKU-1", "/orders", "/notifications"):
        response = await edge.http.get(path)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    bad = await edge.http.get("/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(bad, 401)
    assert bad.headers["www-authenticate"].startswith("Bearer")


async def test_the_console_page_and_the_probes_need_no_token(edge: Edge) -> None:
    page = await edge.http.get("/")
    assert page.status_code == 200
    assert "<h1>stockflow console</h1>" in page.text
    assert (await edge.http.get("/healthz")).status_code == 200
    assert (await edge.http.get("/readyz")).status_code == 200


async def test_stock_is_read_by_anyone_and_managed_by_staff_only(edge: Edge) -> None:
    alice = bearer("alice")
    refused = await edge.http.post("/inventory/SKU-1/receipts", json={"qty": 5}, headers=alice)
    assert_problem(refused, 403)
    await edge.receive("SKU-1", 5)
    stock = await edge.http.get("/inventory/SKU-1", headers=alice)
    assert stock.status_code == 200
    assert stock.json() == {
        "sku": "SKU-1",
        "on_hand": 5,
        "reserved": 0,
        "available": 5,
        "version": 1,
    }
    adjusted = await edge.http.post(
        "/inventory/SKU-1/adjustments", json={"delta": -2, "reason": "broken"}, headers=STAFF
    )
    assert adjusted.status_code == 201, adjusted.text
    assert adjusted.json()["on_hand"] == 3
    assert_problem(await edge.http.get("/inventory/SKU-1/events", headers=alice), 403)
    events = await edge.http.get("/inventory/SKU-1/events", headers=STAFF)
    assert [e["type"] for e in events.json()["events"]] == ["StockReceived", "StockAdjusted"]
    assert_problem(await edge.http.get("/inventory/SKU-NONE", headers=alice), 404)


async def test_an_adjustment_below_reserved_is_the_inventory_s_problem_passed_through(
    edge: Edge,
) -> None:
    await edge.receive("SKU-1", 2)
    response = await edge.http.post(
        "/inventory/SKU-1/adjustments", json={"delta": -5}, headers=STAFF
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_customer_sees_only_their_own_orders_and_another_s_is_a_404(edge: Edge) -> None:
    await edge.receive("SKU-1", 10)
    mine = (await edge.place("alice", [{"sku": "SKU-1", "qty": 1}], "a-1")).json()["id"]
    theirs = (await edge.place("bob", [{"sku": "SKU-1", "qty": 1}], "b-1")).json()["id"]
    alice = bearer("alice")
    assert (await edge.http.get(f"/orders/{mine}", headers=alice)).status_code == 200
    assert_problem(await edge.http.get(f"/orders/{theirs}", headers=alice), 404)
    assert_problem(await edge.http.post(f"/orders/{theirs}/cancel", headers=alice), 404)
    listed = (await edge.http.get("/orders", headers=alice)).json()
    assert [o["id"] for o in listed["orders"]] == [mine]
    everyone = (await edge.http.get("/orders", headers=STAFF)).json()
    assert {o["id"] for o in everyone["orders"]} == {mine, theirs}


async def test_identity_headers_a_client_sends_are_never_believed(edge: Edge) -> None:
    await edge.receive("SKU-1", 10)
    theirs = (await edge.place("bob", [{"sku": "SKU-1", "qty": 1}], "b-1")).json()["id"]
    forged = {**bearer("alice"), "X-Stockflow-User": "bob", "X-Stockflow-Role": "staff"}
    assert_problem(await edge.http.get(f"/orders/{theirs}", headers=forged), 404)
    assert_problem(await edge.http.post(f"/orders/{theirs}/ship", headers=forged), 403)


async def test_only_staff_ship_and_only_customers_place(edge: Edge) -> None:
    await edge.receive("SKU-1", 10)
    order_id = (await edge.place("alice", [{"sku": "SKU-1", "qty": 1}], "a-1")).json()["id"]
    assert (await edge.settled(order_id))["status"] == "CONFIRMED"
    assert_problem(await edge.http.post(f"/orders/{order_id}/ship", headers=bearer("alice")), 403)
    shipped = await edge.http.post(f"/orders/{order_id}/ship", headers=STAFF)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "SHIPPED"
    again = await edge.http.post(f"/orders/{order_id}/ship", headers=STAFF)
    assert again.status_code == 200  # idempotent
    staff_order = await edge.http.post(
        "/orders",
        json={"lines": [{"sku": "SKU-1", "qty": 1}]},
        headers={**STAFF, "Idempotency-Key": "s"},
    )
    assert_problem(staff_order, 403)


async def test_an_order_replayed_with_its_key_is_answered_the_same_and_placed_once(
    edge: Edge,
) -> None:
    await edge.receive("SKU-1", 10)
    lines = [{"sku": "SKU-1", "qty": 2}]
    first = await edge.place("alice", lines, "same-key")
    second = await edge.place("alice", lines, "same-key")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert first.json()["status"] == "PENDING"
    other = await edge.place("alice", [{"sku": "SKU-1", "qty": 3}], "same-key")
    assert_problem(other, 409)
    await edge.settled(first.json()["id"])
    listed = (await edge.http.get("/orders", headers=bearer("alice"))).json()
    assert len(listed["orders"]) == 1
    stock = (await edge.http.get("/inventory/SKU-1", headers=STAFF)).json()
    assert stock["reserved"] == 2


async def test_a_customer_cancels_their_order(edge: Edge) -> None:
    await edge.receive("SKU-1", 10)
    order_id = (await edge.place("alice", [{"sku": "SKU-1", "qty": 4}], "a-1")).json()["id"]
    await edge.settled(order_id)
    cancelled = await edge.http.post(f"/orders/{order_id}/cancel", headers=bearer("alice"))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"


async def test_bad_bodies_are_refused_at_edge(edge: Edge) -> None:
    staff = {**STAFF, "content-type": "application/json"}
    assert_problem(
        await edge.http.post("/inventory/SKU-1/receipts", content=b'{"qty": ', headers=staff), 422
    )
    assert_problem(
        await edge.http.post("/inventory/SKU-1/receipts", json={"qty": 0}, headers=STAFF), 422
    )
    text = {**STAFF, "content-type": "text/plain"}
    assert_problem(
        await edge.http.post("/inventory/SKU-1/receipts", content=b"qty=1", headers=text), 415
    )
    assert_problem(await edge.http.put("/me", json={"name": ""}, headers=bearer("alice")), 422)
    assert edge.switches["profiles"].calls == 0


async def test_the_profile_is_put_and_read_through_me(edge: Edge) -> None:
    alice = bearer("alice")
    assert_problem(await edge.http.get("/me", headers=alice), 404)
    put = await edge.http.put(
        "/me", json={"name": "Alice", "email": "alice@example.com"}, headers=alice
    )
    assert put.status_code == 200, put.text
    me = (await edge.http.get("/me", headers=alice)).json()
    assert (me["user_id"], me["name"], me["degraded"]) == ("alice", "Alice", False)
    stale = await edge.http.put(
        "/me",
        json={"name": "Alice B", "email": "alice@example.com"},
        headers={**alice, "If-Match": '"7"'},
    )
    assert_problem(stale, 412)
    assert_problem(await edge.http.get("/me", headers=bearer("bob")), 404)


async def test_notifications_and_webhooks_go_to_notifications(edge: Edge) -> None:
    page = await edge.http.get("/notifications", headers=bearer("alice"))
    assert page.status_code == 200
    assert [n["id"] for n in page.json()["notifications"]] == ["n-1"]
    assert (await edge.http.get("/notifications", headers=bearer("bob"))).json()[
        "notifications"
    ] == []
    wanted = {"url": "https://hooks.example.com/x", "events": ["OrderConfirmed"]}
    assert_problem(await edge.http.post("/webhooks", json=wanted, headers=bearer("alice")), 403)
    created = await edge.http.post("/webhooks", json=wanted, headers=STAFF)
    assert created.status_code == 201, created.text
    hook = created.json()["id"]
    assert created.json()["secret"].startswith("whsec_")
    assert [
        w["id"] for w in (await edge.http.get("/webhooks", headers=STAFF)).json()["webhooks"]
    ] == [hook]
    assert (await edge.http.get(f"/webhooks/{hook}/deliveries", headers=STAFF)).status_code == 200
    assert (await edge.http.delete(f"/webhooks/{hook}", headers=STAFF)).status_code == 204
    assert_problem(await edge.http.delete(f"/webhooks/{hook}", headers=STAFF), 404)


async def test_the_correlation_id_and_the_trace_context_are_forwarded(edge: Edge) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = await edge.http.get(
        "/notifications",
        headers={**bearer("alice"), "X-Correlation-ID": "corr-edge-1", "traceparent": trace},
    )
    assert response.headers["x-correlation-id"] == "corr-edge-1"
    seen = edge.seen["notifications"].headers
    assert seen["x-correlation-id"] == "corr-edge-1"
    assert seen["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert seen["authorization"] == "Bearer test-service-credential"
    assert (seen["x-stockflow-user"], seen["x-stockflow-role"]) == ("alice", "customer")


@pytest.mark.parametrize("name", ["inventory", "orders", "notifications"])
async def test_a_downstream_that_is_down_is_a_503_with_retry_after(edge: Edge, name: str) -> None:
    edge.switches[name].on = False
    path = {"inventory": "/inventory/SKU-1", "orders": "/orders", "notifications": "/notifications"}
    for _ in range(5):  # connection refused, then the breaker opens: 503 every time
        response = await edge.http.get(path[name], headers=STAFF)
        body = assert_problem(response, 503)
        assert body["downstream"] == name
        assert int(response.headers["retry-after"]) >= 1
    assert edge.service.downstreams[name].breaker.state.name.lower() == "open"
    edge.switches[name].on = True
    assert (await edge.http.get("/me", headers=STAFF)).status_code == 404  # others unaffected


async def test_the_openapi_links_lead_from_a_placed_order_to_reading_cancelling_shipping_it(
    edge: Edge,
) -> None:
    """The links schemathesis' stateful phase follows through edge: POST /orders -> GET,
    cancel, ship, the same operation ids as in orders' own document."""
    spec = (await edge.http.get("/openapi.json")).json()
    await edge.receive("SKU-1", 10)
    placed = await edge.place("alice", [{"sku": "SKU-1", "qty": 1}], key="links-1")
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    links = follow(spec, "/orders", "post", 202, placed.json())
    assert links == {
        "GetOrder": ("GET", f"/orders/{order_id}"),
        "CancelOrder": ("POST", f"/orders/{order_id}/cancel"),
        "ShipOrder": ("POST", f"/orders/{order_id}/ship"),
    }
    await edge.settled(order_id)
    read = await edge.http.request(*links["GetOrder"], headers=bearer("alice"))
    assert (read.status_code, read.json()["status"]) == (200, "CONFIRMED")
    then = follow(spec, "/orders/{order_id}", "get", 200, read.json())
    assert then == {key: links[key] for key in ("CancelOrder", "ShipOrder")}
    cancelled = await edge.http.request(*then["CancelOrder"], headers=bearer("alice"))
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "CANCELLED")
