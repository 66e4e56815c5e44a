"""The saga on real ports, embedded and distributed: every test ends with the audit."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from tests.orders.integration.deployment import Deployment, client, eventually, random_lines

pytestmark = pytest.mark.slow


async def test_an_oversell_attempt_confirms_exactly_the_available_units(
    deployment: Deployment,
) -> None:
    await deployment.start("inventory")
    await deployment.start("orders")
    async with client(deployment) as api:
        await api.receive("SKU-HOT", 25)
        responses = await asyncio.gather(
            *(api.place([{"sku": "SKU-HOT", "qty": 1}], user=f"u{n % 7}") for n in range(80))
        )
        assert [r.status_code for r in responses] == [202] * 80
        orders = await api.settled([r.json()["id"] for r in responses])
        statuses = Counter(o["status"] for o in orders.values())
        assert statuses == {"CONFIRMED": 25, "REJECTED": 55}
        assert {o["reason"] for o in orders.values() if o["status"] == "REJECTED"} == {
            "insufficient_stock"
        }
        stock = await api.stock("SKU-HOT")
        assert (stock["on_hand"], stock["reserved"], stock["available"]) == (25, 25, 0)
    report = deployment.assert_audit_clean()
    assert report["orders"]["checked"] is True
    assert report["orders"]["orders"] == 80


async def test_replays_cancel_and_ship_change_stock_exactly_once(deployment: Deployment) -> None:
    await deployment.start("inventory")
    await deployment.start("orders")
    rng = random.Random(7)
    skus = [f"SKU-{n}" for n in range(4)]
    async with client(deployment) as api:
        for sku in skus:
            await api.receive(sku, 30)
        placed = []
        for n in range(30):
            lines = random_lines(skus, rng)
            first = await api.place(lines, key=f"key-{n}")
            replay = await api.place(lines, key=f"key-{n}")
            assert replay.json() == first.json()
            placed.append(first.json()["id"])
        orders = await api.settled(placed)
        confirmed = [o for o, body in orders.items() if body["status"] == "CONFIRMED"]
        assert len(confirmed) >= 20
        cancelled, shipped = confirmed[::3], confirmed[1::3]
        for order_id in cancelled:
            assert (await api.act(order_id, "cancel")).json()["status"] == "CANCELLED"
            assert (await api.act(order_id, "cancel")).status_code == 200  # idempotent
        for order_id in shipped:
            assert (await api.act(order_id, "ship")).json()["status"] == "SHIPPED"
            assert (await api.act(order_id, "ship")).status_code == 200

        shipped_units = Counter[str]()
        held_units = Counter[str]()
        for order_id in confirmed:
            for line in orders[order_id]["lines"]:
                if order_id in shipped:
                    shipped_units[line["sku"]] += line["qty"]
                elif order_id not in cancelled:
                    held_units[line["sku"]] += line["qty"]

        async def stock_settled() -> bool:
            for sku in skus:
                stock = await api.stock(sku)
                if (stock["on_hand"], stock["reserved"]) != (
                    30 - shipped_units[sku],
                    held_units[sku],
                ):
                    return False
            return True

        await eventually(stock_settled)
    deployment.assert_audit_clean()


async def test_orders_time_out_while_the_inventory_is_stopped_and_nothing_stays_reserved(
    deployment: Deployment,
) -> None:
    await deployment.start("inventory")
    await deployment.start("orders")
    async with client(deployment) as api:
        await api.receive("SKU-T", 10)
        await deployment.stop("inventory")
        placed = [(await api.place([{"sku": "SKU-T", "qty": 2}])).json()["id"] for _ in range(3)]
        orders = await api.settled(placed, within=30)
        assert {(o["status"], o["reason"]) for o in orders.values()} == {("REJECTED", "timeout")}

        await deployment.start("inventory")  # works through its backlog: reserves, is released

        async def released() -> bool:
            types = Counter(e["type"] for e in await api.events("SKU-T"))
            return types["StockReserved"] == types["ReservationReleased"] == len(placed)

        await eventually(released)
        assert (await api.stock("SKU-T"))["available"] == 10
        for order_id in placed:
            assert (await api.order(order_id))["status"] == "REJECTED"
    deployment.assert_audit_clean()


async def test_duplicated_and_late_events_change_nothing_twice(deployment: Deployment) -> None:
    from stockflow.contracts.inventory_commands import EVENTS_TOPIC
    from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
    from stockflow_kit.messaging import Envelope, make_bus

    await deployment.start("inventory")
    await deployment.start("orders")
    async with client(deployment) as api:
        await api.receive("SKU-D", 4)
        # One after the other: on Kafka the two orders' events are on different partitions,
        # so two placed together may reach the inventory in either order.
        confirmed = (await api.place([{"sku": "SKU-D", "qty": 3}])).json()["id"]
        await api.settled([confirmed])
        rejected = (await api.place([{"sku": "SKU-D", "qty": 3}])).json()["id"]
        orders = await api.settled([confirmed, rejected])
        assert orders[confirmed]["status"] == "CONFIRMED"
        assert orders[rejected]["status"] == "REJECTED"

        bus = make_bus(deployment.env["BUS_URL"], name="test")
        await bus.start()
        try:
            lines = [{"sku": "SKU-D", "qty": 3}]
            placed_again = Envelope.new(
                "OrderPlaced",
                {"order_id": confirmed, "customer_id": "alice", "lines": lines},
                source="orders",
                subject=confirmed,
            )
            # Another copy of a reservation the order holds, and a late one for the rejected
            # order (orders answers it with a release, which finds nothing held).
            reserved_again = Envelope.new(
                "StockReserved",
                {"sku": "SKU-D", "order_id": confirmed, "qty": 3},
                source="inventory",
                subject="SKU-D",
            )
            late = Envelope.new(
                "StockReserved",
                {"sku": "SKU-D", "order_id": rejected, "qty": 3},
                source="inventory",
                subject="SKU-D",
            )
            await bus.publish(ORDERS_EVENTS_TOPIC, [placed_again, placed_again])
            await bus.publish(EVENTS_TOPIC, [reserved_again, late, late])
        finally:
            await bus.close()

        async def compensated() -> bool:
            return await deployment.processes["orders"].metric("orders_compensations_total") == 1

        await eventually(compensated)
        await asyncio.sleep(1.0)  # room for anything else (there should be nothing)
        types = Counter(e["type"] for e in await api.events("SKU-D"))
        assert types["StockReserved"] == 1
        assert types["ReservationReleased"] == 0
        stock = await api.stock("SKU-D")
        assert (stock["on_hand"], stock["reserved"]) == (4, 3)
        assert (await api.order(confirmed))["status"] == "CONFIRMED"
        assert (await api.order(rejected))["status"] == "REJECTED"
    deployment.assert_audit_clean()
