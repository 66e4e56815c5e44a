"""The reservation saga in-process: orders and inventory on one in-memory bus."""

from __future__ import annotations

import asyncio

from tests.orders.conftest import (
    AUTH,
    STAFF,
    System,
    client,
    customer,
    eventually,
    inventory_settings,
    orders_settings,
)

from stockflow.contracts.inventory_commands import EVENTS_TOPIC
from stockflow.inventory.adapters.event_store.memory import InMemoryEventStore
from stockflow.inventory.bootstrap import build as build_inventory
from stockflow.orders.bootstrap import build as build_orders
from stockflow_kit.messaging import Envelope, InMemoryBus


async def test_an_order_is_accepted_at_once_and_confirmed_when_its_stock_is_reserved(
    system: System,
) -> None:
    await system.receive("SKU-1", 10)
    await system.receive("SKU-2", 5)
    response = await system.place([{"sku": "SKU-1", "qty": 3}, {"sku": "SKU-2", "qty": 1}])
    assert response.status_code == 202
    placed = response.json()
    assert placed["status"] == "PENDING"
    order = await system.settled(placed["id"])
    assert order["status"] == "CONFIRMED"
    assert order["lines"] == [{"sku": "SKU-1", "qty": 3}, {"sku": "SKU-2", "qty": 1}]
    assert (await system.stock("SKU-1"))["reserved"] == 3
    assert (await system.stock("SKU-2"))["reserved"] == 1


async def test_an_order_for_more_than_is_available_is_rejected_and_holds_nothing(
    system: System,
) -> None:
    await system.receive("SKU-1", 10)
    await system.receive("SKU-2", 1)
    response = await system.place([{"sku": "SKU-1", "qty": 3}, {"sku": "SKU-2", "qty": 2}])
    order = await system.settled(response.json()["id"])
    assert (order["status"], order["reason"]) == ("REJECTED", "insufficient_stock")
    assert (await system.stock("SKU-1"))["reserved"] == 0


async def test_cancel_releases_and_ship_commits_the_reservation(system: System) -> None:
    await system.receive("SKU-1", 10)
    first = (await system.place([{"sku": "SKU-1", "qty": 4}])).json()["id"]
    second = (await system.place([{"sku": "SKU-1", "qty": 2}])).json()["id"]
    await system.settled(first)
    await system.settled(second)

    cancelled = await system.orders_http.post(f"/orders/{first}/cancel", headers=customer("alice"))
    assert cancelled.json()["status"] == "CANCELLED"
    again = await system.orders_http.post(f"/orders/{first}/cancel", headers=customer("alice"))
    assert (again.status_code, again.json()["status"]) == (200, "CANCELLED")
    shipped = await system.orders_http.post(f"/orders/{second}/ship", headers=STAFF)
    assert shipped.json()["status"] == "SHIPPED"

    stock = await eventually(
        lambda: system.stock("SKU-1"), lambda s: s["reserved"] == 0 and s["on_hand"] == 8
    )
    assert stock["available"] == 8


async def test_a_replayed_placement_gets_the_same_answer_and_another_body_a_conflict(
    system: System,
) -> None:
    await system.receive("SKU-1", 10)
    lines = [{"sku": "SKU-1", "qty": 1}]
    first = await system.place(lines, key="same-key")
    replay = await system.place(lines, key="same-key")
    assert replay.status_code == 202
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    changed = await system.place([{"sku": "SKU-1", "qty": 2}], key="same-key")
    assert changed.status_code == 409
    assert changed.headers["content-type"] == "application/problem+json"
    # Another customer's equal key is another order.
    other = await system.place(lines, key="same-key", user="bob")
    assert other.json()["id"] != first.json()["id"]
    await system.settled(first.json()["id"])
    await system.settled(other.json()["id"])
    assert (await system.stock("SKU-1"))["reserved"] == 2


async def test_orders_time_out_while_the_inventory_is_down_and_nothing_stays_reserved(
    bus: InMemoryBus,
) -> None:
    store = InMemoryEventStore()
    inventory = build_inventory(inventory_settings(), bus=bus, event_store=store)
    await inventory.start()
    async with client(inventory.app) as http:
        await http.post("/inventory/SKU-7/receipts", json={"qty": 5}, headers=AUTH)
    await inventory.stop()  # down while the order waits

    orders = build_orders(orders_settings(saga_timeout_seconds=0.3), bus=bus)
    await orders.start()
    try:
        async with client(orders.app) as http:
            placed = await http.post(
                "/orders",
                json={"lines": [{"sku": "SKU-7", "qty": 2}]},
                headers={**customer("alice"), "Idempotency-Key": "k"},
            )
            order_id = placed.json()["id"]
            timed_out = await eventually(
                lambda: http.get(f"/orders/{order_id}", headers=STAFF),
                lambda r: r.json()["status"] != "PENDING",
            )
            assert (timed_out.json()["status"], timed_out.json()["reason"]) == (
                "REJECTED",
                "timeout",
            )

            # The inventory comes back and works through its backlog: the late OrderPlaced
            # reserves, and that reservation is released again (by the timeout's release or
            # by orders' compensation, whichever the inventory sees last).
            inventory = build_inventory(inventory_settings(), bus=bus, event_store=store)
            await inventory.start()
            async with client(inventory.app) as inv:

                async def types() -> list[str]:
                    page = (await inv.get("/inventory/SKU-7/events", headers=AUTH)).json()
                    return [e["type"] for e in page["events"]]

                seen = await eventually(types, lambda t: "ReservationReleased" in t)
                assert seen.count("StockReserved") == 1
                stock = (await inv.get("/inventory/SKU-7", headers=AUTH)).json()
                assert (stock["reserved"], stock["available"]) == (0, 5)
            final = (await http.get(f"/orders/{order_id}", headers=STAFF)).json()
            assert (final["status"], final["reason"]) == ("REJECTED", "timeout")
    finally:
        await orders.stop()
        await inventory.stop()


async def test_a_duplicated_inventory_event_is_applied_once(system: System) -> None:
    await system.receive("SKU-1", 10)
    order_id = (
        await system.place([{"sku": "SKU-1", "qty": 1}, {"sku": "SKU-2", "qty": 1}])
    ).json()["id"]
    # SKU-2 has no stock: the order is rejected. Now replay a forged StockReserved twice,
    # as a redelivery would: one compensation at most, no status change.
    order = await system.settled(order_id)
    assert order["status"] == "REJECTED"
    event = Envelope.new(
        "StockReserved",
        {"sku": "SKU-1", "order_id": order_id, "qty": 1},
        source="inventory",
        subject="SKU-1",
    )
    await system.bus.publish(EVENTS_TOPIC, [event, event])
    await asyncio.sleep(0.3)
    assert system.orders.registry.get_sample_value("orders_compensations_total") == 1
    assert (await system.order(order_id))["status"] == "REJECTED"
