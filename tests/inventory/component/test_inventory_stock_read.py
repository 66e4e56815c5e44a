"""The fast path of ``GET /inventory/{sku}`` (StockReadRoute) answers as the FastAPI route.

Every request is sent to the service's app and to the same app without the fast route; the
answers must be the same (status, headers but the correlation id, body), whichever path took
them: the ordinary read, and each case the fast path hands to the FastAPI route.
"""

from __future__ import annotations

import copy

import httpx
import pytest
from tests.inventory.conftest import SERVICE_TOKEN

from stockflow.inventory.bootstrap import InventoryService
from stockflow.inventory.entrypoints.stock_read import StockReadRoute

TOKEN = f"Bearer {SERVICE_TOKEN}"
CORRELATION = "X-Correlation-ID"


def _without_fast_route(service: InventoryService) -> object:
    app = copy.copy(service.app)
    app.router = copy.copy(service.app.router)
    app.router.routes = [r for r in service.app.router.routes if not isinstance(r, StockReadRoute)]
    app.middleware_stack = None  # rebuilt around the copied router on the first call
    return app


def _answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.multi_items() if k != CORRELATION.lower()]
    return response.status_code, headers, response.content


async def test_the_fast_route_is_in_front_of_the_fastapi_route(
    service: InventoryService,
) -> None:
    paths = [getattr(r, "path", None) for r in service.app.router.routes]
    fast = next(i for i, r in enumerate(service.app.router.routes) if isinstance(r, StockReadRoute))
    assert paths[fast] == "/inventory/{sku}"
    assert "/inventory/{sku}" in paths[fast + 1 :]


@pytest.mark.parametrize(
    ("method", "path", "authorization"),
    [
        ("GET", "/inventory/A", TOKEN),  # the fast path
        ("GET", "/inventory/A", "bearer " + SERVICE_TOKEN),  # any case of the scheme
        ("GET", "/inventory/A", None),
        ("GET", "/inventory/A", "Bearer not-the-credential"),
        ("GET", "/inventory/A", "Basic " + SERVICE_TOKEN),
        ("GET", "/inventory/NOPE", TOKEN),  # never recorded: 404
        ("GET", "/inventory/-bad", TOKEN),  # malformed: 422
        ("GET", "/inventory/A%0A", TOKEN),  # a trailing newline is not a SKU
        ("GET", "/inventory/" + "A" * 101, TOKEN),  # too long
        ("GET", "/inventory/-bad", None),  # the credential is checked first
        ("HEAD", "/inventory/A", TOKEN),
        ("POST", "/inventory/A", TOKEN),
        ("DELETE", "/inventory/A", TOKEN),
    ],
)
async def test_the_fast_route_answers_as_the_fastapi_route(
    service: InventoryService, method: str, path: str, authorization: str | None
) -> None:
    slow_app = _without_fast_route(service)
    headers = {CORRELATION: "test-correlation-1"}
    if authorization is not None:
        headers["Authorization"] = authorization
    await _receive(service.app, "A", 1)
    answers = []
    for app in (service.app, slow_app):
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as client:
            response = await client.request(method, path, headers=headers)
        assert response.headers[CORRELATION] == "test-correlation-1"
        answers.append(_answer(response))
    assert answers[0] == answers[1]


async def test_an_ordinary_read_does_not_reach_the_fastapi_route(
    service: InventoryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = next(r for r in service.app.router.routes if isinstance(r, StockReadRoute))

    async def fail(*_args: object) -> None:
        raise AssertionError("the fallback answered")

    monkeypatch.setattr(fast.fallback, "handle", fail)
    await _receive(service.app, "A", 4)
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as client:
        read = await client.get("/inventory/A", headers={"Authorization": TOKEN})
        assert read.status_code == 200
        assert read.json()["on_hand"] == 4
        # An unknown SKU is the FastAPI route's (here a 500: its handler fails).
        unknown = await client.get("/inventory/NOPE", headers={"Authorization": TOKEN})
        assert unknown.status_code == 500


async def _receive(app: object, sku: str, qty: int) -> None:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as client:
        created = await client.post(
            f"/inventory/{sku}/receipts",
            json={"qty": qty, "reference": "r"},
            headers={"Authorization": TOKEN},
        )
    assert created.status_code == 201, created.text


async def test_a_write_is_read_back_through_the_fast_route(service: InventoryService) -> None:
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as client:
        for qty, on_hand in ((3, 3), (2, 5)):
            await _receive(service.app, "B", qty)
            read = await client.get("/inventory/B", headers={"Authorization": TOKEN})
            assert read.json()["on_hand"] == on_hand
