"""The README's Python snippets run, and do what the README says, against the real API."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from stockflow_kit.http import IDEMPOTENT_REPLAYED_HEADER
from stockflow_kit.http.testing import make_record
from stockflow_kit.messaging import Envelope, InMemoryBus, OutboxRelay
from stockflow_kit.resilience import DEADLINE_HEADER

README = Path(__file__).parents[2] / "README.md"
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def snippets() -> list[str]:
    return _PYTHON_BLOCK.findall(README.read_text(encoding="utf-8"))


def run_snippet(index: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"readme_snippet_{index}"}
    exec(compile(snippets()[index], f"{README}:snippet {index}", "exec"), namespace)
    return namespace


class FakeInventory:
    """The downstream of the README's service: stock levels, a failure switch, what it got."""

    def __init__(self) -> None:
        self.available = {"SKU-1": 3, "SKU-0": 0}
        self.failing = False
        self.received: list[httpx.Headers] = []
        self.app = FastAPI()
        self.app.get("/inventory/{sku}")(self.read)

    async def read(self, sku: str, request: Request) -> dict[str, int]:
        self.received.append(httpx.Headers(dict(request.headers)))
        if self.failing:
            raise RuntimeError("inventory is down")
        return {"available": self.available[sku]}


def test_the_readme_has_the_snippets_this_test_runs() -> None:
    assert len(snippets()) == 7


async def test_the_main_snippet_serves_stock_and_maps_downstream_errors_to_problems() -> None:
    create_app = run_snippet(0)["create_app"]
    inventory = FakeInventory()
    downstream = httpx.ASGITransport(app=inventory.app, raise_app_exceptions=False)
    app: FastAPI = create_app(
        "http://inventory", transport=downstream, registry=CollectorRegistry()
    )

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sf") as caller,
    ):
        ok = await caller.get(
            "/stock/SKU-1", headers={"X-Correlation-ID": "readme-12345678", DEADLINE_HEADER: "1500"}
        )
        out_of_stock = await caller.get("/stock/SKU-0")
        inventory.failing = True
        failed = await caller.get("/stock/SKU-1")  # three attempts
        failed_again = await caller.get("/stock/SKU-1")  # two more: five failures open it
        refused = await caller.get("/stock/SKU-1")  # the breaker answers
        metrics = (await caller.get("/metrics")).text

    assert ok.json() == {"available": 3}
    assert ok.headers["X-Correlation-ID"] == "readme-12345678"
    first = inventory.received[0]
    assert first["X-Correlation-ID"] == "readme-12345678"
    assert 0 < int(first[DEADLINE_HEADER]) <= 1500
    assert (out_of_stock.status_code, out_of_stock.json()["title"]) == (409, "Out of stock")
    assert out_of_stock.json()["detail"] == "SKU-0 is out of stock."
    assert [failed.status_code, failed_again.status_code, refused.status_code] == [502, 503, 503]
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert len(inventory.received) == 2 + 5
    assert 'circuit_breaker_state{name="inventory"} 2.0' in metrics
    assert 'http_client_requests_total{downstream="inventory"' in metrics


def test_the_main_snippet_has_a_composition_root() -> None:
    assert callable(run_snippet(0)["main"])


async def test_the_bus_snippet_publishes_and_consumes_one_message() -> None:
    publish_and_consume = run_snippet(1)["publish_and_consume"]

    assert await publish_and_consume() == ["StockChecked"]


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_the_deadline_helper_falls_back_to_its_limit_on_a_malformed_header(value) -> None:
    request_deadline = run_snippet(0)["request_deadline"]
    scope = {"type": "http", "headers": [(DEADLINE_HEADER.lower().encode(), value.encode())]}

    deadline = request_deadline(Request(scope), limit=2.0)

    assert 1.9 < deadline.remaining() <= 2.0


async def test_the_sources_snippet_applies_good_messages_and_dead_letters_the_malformed() -> None:
    count_stock = run_snippet(2)["count_stock"]
    bus = InMemoryBus(registry=CollectorRegistry())
    await bus.start()
    envelopes = [
        Envelope.new(kind, data, source="storefront", subject="SKU-1")
        for kind, data in [
            ("StockViewed", {}),
            ("StockGuessed", {"quantity": "many"}),
            ("StockCounted", {"quantity": 7}),
        ]
    ]
    try:
        counted, dead = await count_stock(bus, envelopes)
    finally:
        await bus.close()

    assert (counted, dead) == ([7], ["StockGuessed"])


async def test_the_idempotency_snippet_replays_a_retry_and_refuses_a_changed_body(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "receipts.sqlite3")
    app: FastAPI = run_snippet(3)["create_receipts_app"](path)
    url = "/stock/SKU-1/receipts"

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sf") as caller,
    ):
        first = await caller.post(url, json={"qty": 3}, headers={"Idempotency-Key": "r-1"})
        retry = await caller.post(url, json={"qty": 3}, headers={"Idempotency-Key": "r-1"})
        changed = await caller.post(url, json={"qty": 4}, headers={"Idempotency-Key": "r-1"})
        missing = await caller.post(url, json={"qty": 3})
        parameters = app.openapi()["paths"]["/stock/{sku}/receipts"]["post"]["parameters"]

    assert (first.status_code, first.json()) == (201, {"sku": "SKU-1", "received": 3})
    assert (retry.status_code, retry.content) == (201, first.content)
    assert retry.headers[IDEMPOTENT_REPLAYED_HEADER] == "true"
    assert (changed.status_code, missing.status_code) == (409, 400)
    assert "Idempotency-Key" in [p["name"] for p in parameters]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT sku, qty FROM receipts").fetchall() == [("SKU-1", 3)]
        assert conn.execute("SELECT count(*) FROM idempotency_keys").fetchone() == (1,)


async def test_the_sqlalchemy_snippet_commits_messages_and_ids_with_the_state(
    tmp_path: Path,
) -> None:
    snippet = run_snippet(4)
    path = tmp_path / "orders.sqlite3"
    engine = snippet["open_engine"](f"sqlite+aiosqlite:///{path}")
    bus = InMemoryBus()
    await bus.start()
    try:
        async with engine.begin() as conn:
            await conn.run_sync(snippet["metadata"].create_all)
        outbox, inbox, store = snippet["adapters"](engine)
        await snippet["place_order"](outbox, engine, "o-1")
        assert await OutboxRelay(outbox, bus, registry=CollectorRegistry()).relay_once() == 1
        subscription = await bus.subscribe("orders.events", "orders")
        batch = list(await subscription.fetch(10, 0.1))
        await snippet["confirm_orders"](inbox, engine, batch)
        await snippet["confirm_orders"](inbox, engine, batch)  # a redelivery changes nothing
        record = make_record()
        assert await store.put(record) == record
    finally:
        await bus.close()
        await engine.dispose()

    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT status, confirmations FROM orders").fetchall() == [
            ("CONFIRMED", 1)
        ]
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


class FakePool:
    """The README's connection pool: records its lifetime; its check says what to."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.reason: str | None = None

    async def open(self) -> None:
        self.events.append("open")

    def close(self) -> None:
        self.events.append("close")

    async def check(self) -> str | None:
        return self.reason


class FakeRelay:
    def __init__(self) -> None:
        self.running = asyncio.Event()

    async def run(self) -> None:
        self.running.set()
        await asyncio.Event().wait()


async def test_the_lifecycle_snippet_starts_probes_and_stops_its_components() -> None:
    create_service = run_snippet(5)["create_service"]
    pool, relay = FakePool(), FakeRelay()

    async def prune() -> None:
        return None

    app, lifecycle = create_service(pool, relay, prune)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sf") as caller,
    ):
        await asyncio.wait_for(relay.running.wait(), 2)
        ready = await caller.get("/readyz")
        pool.reason = "warming up"
        warming = await caller.get("/readyz")

    assert (ready.status_code, ready.text) == (200, "ready")
    assert (warming.status_code, warming.text) == (503, "pool: warming up")
    assert pool.events == ["open", "close"]
    assert not lifecycle.started


async def test_the_process_snippet_scrapes_a_real_child(tmp_path: Path) -> None:
    requests_served = run_snippet(6)["requests_served"]
    child = Path(__file__).parent / "lifecycle" / "child_server.py"

    assert await requests_served(child, tmp_path / "child.log") == 5.0
    assert "child.terminated" in (tmp_path / "child.log").read_text()
