"""The notifications HTTP API in-process: credentials, who sees what, pages, webhooks, and
refused targets."""

from __future__ import annotations

import pytest
from tests.notifications.conftest import (
    AUTH,
    STAFF,
    Notifications,
    customer,
    eventually,
    order_event,
    publish_orders,
)


async def test_every_route_needs_the_service_credential(notifications: Notifications) -> None:
    http = notifications.http
    for method, path in [
        ("GET", "/notifications"),
        ("POST", "/webhooks"),
        ("GET", "/webhooks"),
        ("DELETE", "/webhooks/wh_1"),
        ("GET", "/webhooks/wh_1/deliveries"),
    ]:
        response = await http.request(method, path, headers={"X-Stockflow-User": "alice"})
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_customer_sees_only_their_own_notifications_newest_first(
    notifications: Notifications,
) -> None:
    await publish_orders(
        notifications.bus,
        order_event("OrderPlaced", "o-1", customer_id="alice"),
        order_event("OrderPlaced", "o-2", customer_id="bob"),
        order_event("OrderConfirmed", "o-1", customer_id="alice", sequence=2),
    )
    page = await eventually(
        lambda: notifications.notifications("alice"), lambda p: len(p["notifications"]) == 2
    )
    assert [n["type"] for n in page["notifications"]] == ["OrderConfirmed", "OrderPlaced"]
    assert {n["user_id"] for n in page["notifications"]} == {"alice"}
    assert all(n["order_id"] == "o-1" for n in page["notifications"])
    bob = await eventually(
        lambda: notifications.notifications("bob"), lambda p: len(p["notifications"]) == 1
    )
    assert bob["notifications"][0]["order_id"] == "o-2"


async def test_notifications_come_in_pages_and_a_foreign_cursor_is_a_404(
    notifications: Notifications,
) -> None:
    events = [order_event("OrderPlaced", f"o-{n}", customer_id="alice") for n in range(5)]
    await publish_orders(notifications.bus, *events)
    await publish_orders(notifications.bus, order_event("OrderPlaced", "o-b", customer_id="bob"))
    await eventually(
        lambda: notifications.notifications("alice"), lambda p: len(p["notifications"]) == 5
    )
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await notifications.notifications("alice", **params)
        seen += [n["order_id"] for n in page["notifications"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(seen) == [f"o-{n}" for n in range(5)]
    assert len(set(seen)) == 5
    bobs = await eventually(
        lambda: notifications.notifications("bob"), lambda p: len(p["notifications"]) == 1
    )
    foreign = await notifications.http.get(
        "/notifications",
        params={"cursor": bobs["notifications"][0]["id"]},
        headers=customer("alice"),
    )
    assert foreign.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"


async def test_a_request_without_a_user_is_refused(notifications: Notifications) -> None:
    response = await notifications.http.get("/notifications", headers=AUTH)
    assert response.status_code == 422
    odd = await notifications.http.get(
        "/notifications", headers={**AUTH, "X-Stockflow-User": "a", "X-Stockflow-Role": "root"}
    )
    assert odd.status_code == 422


async def test_webhooks_are_for_staff(notifications: Notifications) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["OrderPlaced"]}
    http = notifications.http
    assert (await http.post("/webhooks", json=body, headers=customer("a"))).status_code == 403
    assert (await http.get("/webhooks", headers=customer("a"))).status_code == 403
    assert (await http.delete("/webhooks/wh_1", headers=customer("a"))).status_code == 403
    assert (await http.get("/webhooks/wh_1/deliveries", headers=customer("a"))).status_code == 403


async def test_the_secret_is_shown_once_and_a_deleted_webhook_is_gone(
    notifications: Notifications,
) -> None:
    created = await notifications.subscribe(
        "http://127.0.0.1:9/hook", ["OrderPlaced", "OrderPlaced", "LowStockDetected"]
    )
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["OrderPlaced", "LowStockDetected"]
    listed = (await notifications.http.get("/webhooks", headers=STAFF)).json()["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert await notifications.deliveries(created["id"]) == []

    deleted = await notifications.http.delete(f"/webhooks/{created['id']}", headers=STAFF)
    assert deleted.status_code == 204
    again = await notifications.http.delete(f"/webhooks/{created['id']}", headers=STAFF)
    assert again.status_code == 404
    log = await notifications.http.get(f"/webhooks/{created['id']}/deliveries", headers=STAFF)
    assert log.status_code == 404
    assert (await notifications.http.get("/webhooks", headers=STAFF)).json() == {"webhooks": []}


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://192.168.0.1:8080/hook",
        "http://[::1]:8080/hook",
        "http://localhost:9/hook",  # the fixture allows localhost only on its own name... see below
        "http://user:pw@127.0.0.1/hook",
        "http://intranet/hook",
    ],
)
async def test_a_private_target_is_refused_with_a_422_problem(
    notifications: Notifications, url: str
) -> None:
    if url.startswith("http://localhost"):
        url = "http://metadata.internal/hook"
    response = await notifications.http.post(
        "/webhooks", json={"url": url, "events": ["OrderPlaced"]}, headers=STAFF
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Webhook target refused"
    assert {"type", "status", "detail", "correlation_id"} <= problem.keys()


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/x", "events": ["OrderPlaced"]},
        {"url": "https://example.com/x", "events": []},
        {"url": "https://example.com/x", "events": ["OrderExploded"]},
        {"url": "https://example.com/x", "events": ["OrderPlaced"], "secret": "mine"},
        {"events": ["OrderPlaced"]},
    ],
)
async def test_a_malformed_subscription_is_a_422_problem(
    notifications: Notifications, body: dict[str, object]
) -> None:
    response = await notifications.http.post("/webhooks", json=body, headers=STAFF)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
