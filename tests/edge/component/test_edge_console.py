"""The live console's feed and stream, in front of the real inventory and orders (in-process)
and the fakes: what the public and the staff views hold, one gather shared by every stream,
breakers shown as they are, and streams ended at shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.edge.conftest import Edge, bearer

from stockflow.edge.service_layer.console_feed import ConsoleFeed, ConsoleSnapshot
from stockflow.platform.http_server import HttpServer, bind_port


@pytest.fixture
def edge_overrides() -> dict[str, object]:
    return {"console_interval_seconds": 0.05}


async def first(updates: AsyncIterator[dict[str, Any]], check: Any, within: float = 10.0) -> Any:
    """The first view for which ``check(view)`` is true."""
    deadline = time.monotonic() + within
    async for view in updates:
        if check(view):
            return view
        assert time.monotonic() < deadline, view
    raise AssertionError("the stream ended")


def by_name(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in view["services"]}


async def test_the_public_view_has_health_red_and_breakers_and_no_business_data(
    edge: Edge,
) -> None:
    for _ in range(5):
        await edge.http.get("/inventory/SKU-NONE", headers=bearer("alice"))
    view = await first(
        edge.service.console.updates(staff=False),
        lambda v: (by_name(v)["inventory"]["red"] or {}).get("p50") is not None,
    )
    services = by_name(view)
    assert list(services) == ["edge", "profiles", "inventory", "orders", "notifications"]
    assert services["inventory"]["up"]
    assert services["inventory"]["ready"]
    assert services["orders"]["ready"]
    assert services["edge"]["ready"]
    assert services["edge"]["red"]["p50"] is not None  # edge's own five requests
    assert services["orders"]["bus"]["outbox_backlog"] is not None
    assert {n: b["state"] for n, b in view["breakers"].items()} == {
        "profiles": "closed",
        "inventory": "closed",
        "orders": "closed",
        "notifications": "closed",
    }
    assert view["view"] == "public"
    for private in ("orders", "stock", "dead_letters"):
        assert private not in view


async def test_the_staff_view_shows_an_order_turn_confirmed_and_the_stock_it_reserved(
    edge: Edge,
) -> None:
    await edge.receive("SKU-C", 9)
    placed = await edge.place("alice", [{"sku": "SKU-C", "qty": 4}], key="console-1")
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]

    def confirmed(view: dict[str, Any]) -> bool:
        return any(o["id"] == order_id and o["status"] == "CONFIRMED" for o in view["orders"])

    view = await first(edge.service.console.updates(staff=True), confirmed)
    assert view["view"] == "staff"
    assert view["stock"] == [
        {"sku": "SKU-C", "on_hand": 9, "reserved": 4, "available": 5, "version": 2}
    ]
    assert view["orders_error"] is None
    assert view["dead_letters"]["inventory"]["dead_lettered"] == 0


async def test_an_open_breaker_is_on_the_console(edge: Edge) -> None:
    edge.switches["profiles"].on = False
    for _ in range(4):  # threshold 3 consecutive failures (conftest)
        await edge.http.get("/me", headers=bearer("alice"))
    view = await first(
        edge.service.console.updates(staff=False),
        lambda v: v["breakers"]["profiles"]["state"] == "open",
    )
    assert by_name(view)["profiles"]["up"] is False
    assert view["breakers"]["profiles"]["retry_after"] > 0
    assert view["breakers"]["inventory"]["state"] == "closed"


async def test_a_bad_token_is_refused_by_the_stream(edge: Edge) -> None:
    refused = await edge.http.get("/console/stream?token=not.a.jwt")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")


async def test_the_page_script_and_style_are_served_from_the_package(edge: Edge) -> None:
    page = await edge.http.get("/")
    assert 'aria-live="polite"' in page.text
    assert "<caption>" in page.text
    script = await edge.http.get("/console/console.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "EventSource" in script.text
    assert (await edge.http.get("/console/console.css")).status_code == 200
    assert (await edge.http.get("/console/other.js")).status_code == 404


class CountingSource:
    def __init__(self) -> None:
        self.calls: list[bool] = []

    async def gather(self, *, staff: bool) -> ConsoleSnapshot:
        self.calls.append(staff)
        n = len(self.calls)
        return ConsoleSnapshot({"n": n}, {"secret": n} if staff else None)


async def take(feed: ConsoleFeed, staff: bool, count: int) -> list[dict[str, Any]]:
    views = []
    async for view in feed.updates(staff=staff):
        views.append(view)
        if len(views) == count:
            break
    return views


async def test_every_stream_shares_one_gather_per_interval() -> None:
    source = CountingSource()
    feed = ConsoleFeed(source, interval=0.02)
    results = await asyncio.gather(*(take(feed, False, 5) for _ in range(8)))
    assert all(len(views) == 5 for views in results)
    assert len(source.calls) < 12  # 8 streams x 5 views from one shared gather, not 40
    assert source.calls
    assert not any(source.calls)
    assert all("secret" not in v for views in results for v in views)
    await asyncio.sleep(0.1)
    idle = len(source.calls)
    await asyncio.sleep(0.1)
    assert len(source.calls) == idle  # nobody listens: nothing is gathered
    await feed.close()


async def test_a_staff_stream_gets_the_staff_part_and_a_public_one_never() -> None:
    source = CountingSource()
    feed = ConsoleFeed(source, interval=0.02)
    public, staff = await asyncio.gather(take(feed, False, 4), take(feed, True, 4))
    assert all("secret" in v and v["view"] == "staff" for v in staff)
    assert all("secret" not in v and v["view"] == "public" for v in public)
    await feed.close()


async def test_closing_the_feed_ends_every_stream_at_once() -> None:
    feed = ConsoleFeed(CountingSource(), interval=30.0)  # no gather would wake them for 30 s
    streams = [asyncio.create_task(take(feed, False, 1000)) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert feed.listeners == 3
    started = time.monotonic()
    feed.close_soon()
    await asyncio.wait_for(asyncio.gather(*streams), timeout=2)
    assert time.monotonic() - started < 1
    assert feed.listeners == 0
    assert await take(feed, False, 1) == []  # a stream after the close ends at once
    await feed.close()


async def test_open_streams_do_not_hold_up_a_graceful_shutdown(edge: Edge) -> None:
    """Edge's app on a real uvicorn server (the platform's): with a stream open, the server
    stops within a second of being told to, not after its 10 s drain timeout."""
    sock = bind_port("127.0.0.1", 0, service="edge")
    server = HttpServer(edge.service.app, sock, on_shutdown=edge.service.begin_shutdown)
    serving = asyncio.create_task(server.run_on_socket())
    try:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            url = f"http://127.0.0.1:{server.port}/console/stream"  # bound and listening
            async with http.stream("GET", url) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                lines = response.aiter_lines()
                while not (await anext(lines)).startswith("event: snapshot"):
                    pass
                started = time.monotonic()
                server.should_exit = True
                async for _ in lines:  # the server ends the stream
                    pass
            await asyncio.wait_for(serving, timeout=5)
            assert time.monotonic() - started < 2
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
