"""Access-log sampling: a share of the fast successful requests, every error, every slow one."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from stockflow_kit.http import MetricsMiddleware


def _app(registry: CollectorRegistry, **options: object) -> Starlette:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def missing(request: Request) -> Response:
        return PlainTextResponse("no", status_code=404)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.2)
        return PlainTextResponse("late")

    return Starlette(
        routes=[Route("/ok", ok), Route("/missing", missing), Route("/slow", slow)],
        middleware=[Middleware(MetricsMiddleware, registry=registry, **options)],
    )


def _completed(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [log for log in logs if log["event"] == "http.request_completed"]


async def test_a_quarter_of_the_fast_successes_are_logged_evenly_and_all_counted(
    send, registry
) -> None:
    app = _app(registry, log_sample_rate=0.25)

    with capture_logs() as logs:
        for _ in range(8):
            await send(app, "GET", "/ok")

    lines = _completed(logs)
    assert len(lines) == 2
    assert all(line["sample_rate"] == 0.25 for line in lines)
    labels = {"method": "GET", "route": "/ok", "status": "200"}
    assert registry.get_sample_value("http_requests_total", labels) == 8


async def test_errors_and_slow_requests_are_always_logged_unsampled(send, registry) -> None:
    app = _app(registry, log_sample_rate=0.0, slow_request_seconds=0.1)

    with capture_logs() as logs:
        for path in ("/ok", "/missing", "/slow", "/ok"):
            await send(app, "GET", path)

    lines = _completed(logs)
    assert [line["path"] for line in lines] == ["/missing", "/slow"]
    assert all("sample_rate" not in line for line in lines)


async def test_by_default_every_request_is_logged_without_a_sample_rate(send, registry) -> None:
    with capture_logs() as logs:
        for _ in range(3):
            await send(_app(registry), "GET", "/ok")

    lines = _completed(logs)
    assert len(lines) == 3
    assert all("sample_rate" not in line for line in lines)


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_sample_rate_outside_zero_to_one_is_refused(registry, rate: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        MetricsMiddleware(_app(registry), registry=registry, log_sample_rate=rate)
