from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from stockflow_kit.http import CorrelationMiddleware, MetricsMiddleware


def _requests(registry: CollectorRegistry, method: str, route: str, status: int) -> float:
    value = registry.get_sample_value(
        "http_requests_total", {"method": method, "route": route, "status": str(status)}
    )
    return value or 0.0


def _in_flight(registry: CollectorRegistry, method: str = "GET") -> float | None:
    return registry.get_sample_value("http_requests_in_flight", {"method": method})


def _app(registry: CollectorRegistry, **options: Any) -> Starlette:
    async def item(request: Request) -> Response:
        return PlainTextResponse(f"in flight: {_in_flight(registry)}")

    async def broken(request: Request) -> Response:
        return PlainTextResponse("no", status_code=502)

    async def failing(request: Request) -> Response:
        raise RuntimeError("boom")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    sub = Starlette(routes=[Route("/x/{a}", item)])
    return Starlette(
        routes=[
            Route("/items/{id}", item, methods=["GET", "BREW"]),
            Route("/broken", broken),
            Route("/failing", failing),
            Route("/healthz", healthz),
            Mount("/sub", app=sub),
            Mount("/raw", app=PlainTextResponse("raw")),
        ],
        middleware=[
            Middleware(CorrelationMiddleware),
            Middleware(MetricsMiddleware, registry=registry, **options),
        ],
    )


async def test_requests_are_counted_by_route_template_never_by_raw_path(send, registry) -> None:
    app = _app(registry)

    await send(app, "GET", "/items/1")
    await send(app, "GET", "/items/2")

    assert _requests(registry, "GET", "/items/{id}", 200) == 2
    labels = {"method": "GET", "route": "/items/{id}"}
    assert registry.get_sample_value("http_request_duration_seconds_count", labels) == 2
    assert (
        registry.get_sample_value(
            "http_requests_total", {"method": "GET", "route": "/items/1", "status": "200"}
        )
        is None
    )


async def test_each_status_is_counted_separately(send, registry) -> None:
    app = _app(registry)

    await send(app, "GET", "/broken")
    await send(app, "DELETE", "/items/1")

    assert _requests(registry, "GET", "/broken", 502) == 1
    assert _requests(registry, "DELETE", "/items/{id}", 405) == 1


async def test_unknown_paths_share_the_unmatched_label(send, registry) -> None:
    app = _app(registry)

    await send(app, "GET", "/no/such/thing")
    await send(app, "GET", "/another/one")

    assert _requests(registry, "GET", "<unmatched>", 404) == 2


async def test_mounted_routes_are_labelled_with_the_mount_prefix(send, registry) -> None:
    app = _app(registry)

    await send(app, "GET", "/sub/x/1")
    await send(app, "GET", "/raw/anything/here")

    assert _requests(registry, "GET", "/sub/x/{a}", 200) == 1
    assert _requests(registry, "GET", "/raw/{path}", 200) == 1


async def test_a_deployment_root_path_is_left_out_of_the_label(drive, registry) -> None:
    app = _app(registry)

    messages = await drive(app, method="GET", path="/api/items/1", root_path="/api")

    assert messages[0]["status"] == 200
    assert _requests(registry, "GET", "/items/{id}", 200) == 1


async def test_non_standard_methods_share_one_label(send, registry) -> None:
    await send(_app(registry), "BREW", "/items/1")

    assert _requests(registry, "_OTHER", "/items/{id}", 200) == 1


async def test_in_flight_is_one_during_a_request_and_zero_after(send, registry) -> None:
    response = await send(_app(registry), "GET", "/items/1")

    assert response.text == "in flight: 1.0"
    assert _in_flight(registry) == 0


async def test_an_exception_is_counted_as_a_500_and_propagates(send, registry) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await send(_app(registry), "GET", "/failing")

    assert _requests(registry, "GET", "/failing", 500) == 1
    assert _in_flight(registry) == 0


async def test_concurrent_requests_are_all_in_flight(registry) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    observed: list[float | None] = []

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        entered.set()
        await release.wait()
        observed.append(_in_flight(registry))
        await PlainTextResponse("done")(scope, receive, send)

    middleware = MetricsMiddleware(slow, registry=registry, log_requests=False)

    async def request() -> None:
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "root_path": ""}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            pass

        await middleware(scope, receive, send)

    tasks = [asyncio.create_task(request()) for _ in range(3)]
    await entered.wait()
    await asyncio.sleep(0)
    assert _in_flight(registry) == 3
    release.set()
    await asyncio.gather(*tasks)
    assert _in_flight(registry) == 0


async def test_one_access_log_line_per_request_with_the_request_facts(send, registry) -> None:
    with capture_logs() as logs:
        response = await send(
            _app(registry), "GET", "/items/42", headers={"X-Correlation-ID": "req-12345678"}
        )

    [line] = [log for log in logs if log["event"] == "http.request_completed"]
    assert response.status_code == 200
    assert line["log_level"] == "info"
    assert line["method"] == "GET"
    assert line["route"] == "/items/{id}"
    assert line["path"] == "/items/42"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["client"] == "127.0.0.1"
    assert line["correlation_id"] == "req-12345678"


async def test_a_5xx_is_logged_at_error_level(send, registry) -> None:
    with capture_logs() as logs:
        await send(_app(registry), "GET", "/broken")

    [line] = [log for log in logs if log["event"] == "http.request_completed"]
    assert line["log_level"] == "error"
    assert line["status"] == 502


async def test_probe_and_scrape_paths_are_counted_but_not_logged(send, registry) -> None:
    with capture_logs() as logs:
        await send(_app(registry), "GET", "/healthz")

    assert logs == []
    assert _requests(registry, "GET", "/healthz", 200) == 1


async def test_the_quiet_paths_and_the_access_log_can_be_configured(send, registry) -> None:
    with capture_logs() as logs:
        await send(_app(registry, quiet_paths=()), "GET", "/healthz")
    with capture_logs() as silent:
        await send(_app(registry, log_requests=False), "GET", "/items/1")

    assert [log["path"] for log in logs] == ["/healthz"]
    assert silent == []


async def test_without_a_client_address_the_access_log_says_none(drive, registry) -> None:
    with capture_logs() as logs:
        await drive(_app(registry), method="GET", path="/items/1")

    assert logs[0]["client"] is None


async def test_other_scope_types_pass_through_uncounted(registry) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        pass

    await MetricsMiddleware(app, registry=registry)({"type": "lifespan"}, receive, send)

    assert scopes == [{"type": "lifespan"}]
    assert _in_flight(registry) is None
