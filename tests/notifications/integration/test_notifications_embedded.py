"""The whole embedded system (`stockflow up`, real ports, SQLite and the embedded bus): an
order placed at orders and settled by the inventory reaches its customer's notifications and a
staff webhook, signed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from tests.notifications.conftest import Receiver, eventually

from stockflow_kit.lifecycle import ServiceProcess, free_port_block

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
pytestmark = pytest.mark.slow


async def test_an_order_reaches_its_customer_and_a_webhook_through_stockflow_up(
    tmp_path: Path, receivers: Callable[[], Receiver]
) -> None:
    receiver = receivers()
    base = free_port_block(5)
    data = tmp_path / "data"
    system = ServiceProcess(
        [STOCKFLOW, "up", "--data-dir", str(data), "--port-base", str(base), "--no-seed"],
        name="stockflow up",
        port=base + 4,
        env={
            "NOTIFICATIONS_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]',
            "STOCKFLOW_LOG_FORMAT": "json",
        },
        log=tmp_path / "up.log",
    )
    system.start()
    try:
        await system.wait_ready(within=60)
        token = (data / "service-token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        staff = {**auth, "X-Stockflow-Role": "staff"}
        alice = {**auth, "X-Stockflow-User": "alice"}
        async with httpx.AsyncClient(timeout=5) as http:
            notifications = f"http://127.0.0.1:{base + 4}"
            subscribed = await http.post(
                f"{notifications}/webhooks",
                json={"url": receiver.url, "events": ["OrderPlaced", "OrderConfirmed"]},
                headers=staff,
            )
            assert subscribed.status_code == 201, subscribed.text
            webhook = subscribed.json()
            receipt = await http.post(
                f"http://127.0.0.1:{base + 2}/inventory/SKU-1/receipts",
                json={"qty": 5},
                headers=auth,
            )
            assert receipt.status_code == 201, receipt.text
            placed = await http.post(
                f"http://127.0.0.1:{base + 3}/orders",
                json={"lines": [{"sku": "SKU-1", "qty": 2}]},
                headers={**alice, "Idempotency-Key": "embedded-1"},
            )
            assert placed.status_code == 202, placed.text
            order_id = placed.json()["id"]

            async def mine() -> list[dict[str, Any]]:
                page = await http.get(f"{notifications}/notifications", headers=alice)
                found: list[dict[str, Any]] = page.json()["notifications"]
                return found

            seen = await eventually(mine, lambda ns: len(ns) == 2, within=30.0)
            assert [n["type"] for n in seen] == ["OrderConfirmed", "OrderPlaced"]
            assert {n["order_id"] for n in seen} == {order_id}
            await eventually(lambda: _count(receiver), lambda n: n == 2, within=30.0)
            verifier = Webhook(webhook["secret"])
            types = [verifier.verify(r.body, r.headers)["type"] for r in receiver.received]
            assert sorted(types) == ["OrderConfirmed", "OrderPlaced"]
    finally:
        assert system.terminate() == 0


async def _count(receiver: Receiver) -> int:
    return len(receiver.received)
