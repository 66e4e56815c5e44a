"""KitMiddleware (what instrument() installs) against the stack of the five classes it replaces.

Every request of a script is sent to both applications: an instrumented one, and the same
routes wired by hand with CorrelationMiddleware, MetricsMiddleware, LoadSheddingMiddleware,
BodyTimeoutMiddleware and BodySizeLimitMiddleware. The responses, the metrics, the access
lines and the spans must be the same, but for what differs by nature (generated ids,
timestamps, durations).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from stockflow_kit.http import (
    BodySizeLimitMiddleware,
    BodyTimeoutMiddleware,
    CorrelationMiddleware,
    KitMiddleware,
    LoadSheddingMiddleware,
    MetricsMiddleware,
    install_problem_handlers,
    instrument,
    metrics_endpoint,
)
from stockflow_kit.observability import configure_logging
from stockflow_kit.observability.correlation import is_valid_correlation_id

_LIMIT = 64
_TIMEOUT = 0.2
_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _routes(release: asyncio.Event) -> Starlette:
    async def item(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["item_id"]})

    async def echo(request: Request) -> Response:
        return JSONResponse({"length": len(await request.body())})

    async def boom(_request: Request) -> Response:
        raise RuntimeError("the handler failed")

    async def own_id(_request: Request) -> Response:
        return PlainTextResponse("mine", headers={"X-Correlation-ID": "set-by-the-app"})

    async def slow(_request: Request) -> Response:
        await release.wait()
        return PlainTextResponse("done")

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def hang_up(request: Request) -> Response:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        raise ClientDisconnect  # as Request.body() does: no response at all

    return Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Route("/echo", echo, methods=["POST"]),
            Route("/boom", boom),
            Route("/own-id", own_id),
            Route("/slow", slow),
            Route("/healthz", healthz),
            Route("/hang-up", hang_up),
        ]
    )


def _fused(
    registry: CollectorRegistry, release: asyncio.Event, tp: TracerProvider | None
) -> ASGIApp:
    app = _routes(release)
    instrument(
        app,
        service="svc",
        registry=registry,
        max_in_flight=2,
        body_timeout_seconds=_TIMEOUT,
        max_body_bytes=_LIMIT,
        tracer_provider=tp,
    )
    assert next(m.cls for m in app.user_middleware) is KitMiddleware
    return app


def _stacked(
    registry: CollectorRegistry, release: asyncio.Event, tp: TracerProvider | None
) -> ASGIApp:
    app = _routes(release)
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=_LIMIT)
    app.add_middleware(BodyTimeoutMiddleware, timeout_seconds=_TIMEOUT)
    app.add_middleware(LoadSheddingMiddleware, max_in_flight=2)
    app.add_middleware(MetricsMiddleware, registry=registry)
    app.add_middleware(CorrelationMiddleware, service="svc", tracer_provider=tp)
    app.add_route("/metrics", metrics_endpoint(registry), methods=["GET"])
    return app


class _Request:
    """One raw request: its scope, and the messages its client sends (each after a delay)."""

    def __init__(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]] = (),
        chunks: Sequence[bytes] = (),
        *,
        delay: float = 0.0,
        http_version: str = "1.1",
    ) -> None:
        self.scope = {
            "type": "http",
            "http_version": http_version,
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "client": ("10.0.0.7", 5000),
            "server": ("test", 80),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        }
        self.chunks = list(chunks)
        self.delay = delay

    async def run(self, app: ASGIApp) -> list[Message]:
        pending: list[Message] = [
            {"type": "http.request", "body": c, "more_body": i < len(self.chunks) - 1}
            for i, c in enumerate(self.chunks)
        ] or [{"type": "http.request", "body": b"", "more_body": False}]
        sent: list[Message] = []

        async def receive() -> Message:
            if self.delay:
                await asyncio.sleep(self.delay)
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        await app(dict(self.scope), receive, send)
        return sent


_SCRIPT: Sequence[_Request] = (
    _Request("GET", "/items/1"),
    _Request("GET", "/items/2", [("X-Correlation-ID", "req-12345678")]),
    _Request("GET", "/items/3", [("X-Correlation-ID", "bad id with spaces!")]),
    _Request("GET", "/items/4", [("traceparent", _TRACEPARENT)]),
    _Request("POST", "/echo", [("content-length", "10")], [b"0123456789"]),
    _Request("POST", "/echo", [("content-length", "0")]),
    _Request("POST", "/echo", [("content-length", str(_LIMIT + 1))], [b"x" * (_LIMIT + 1)]),
    _Request("POST", "/echo", [("transfer-encoding", "chunked")], [b"x" * 40, b"y" * 40]),
    _Request("POST", "/echo", [("content-length", "10")], [b"0123456789"], delay=2 * _TIMEOUT),
    _Request("POST", "/echo", [], [b"x" * (_LIMIT + 1)], http_version="2"),
    _Request("GET", "/missing"),
    _Request("DELETE", "/items/1"),
    _Request("BREW", "/items/1"),
    _Request("GET", "/boom"),
    _Request("GET", "/own-id"),
    _Request("GET", "/hang-up"),
    _Request("GET", "/healthz"),
)


def _response(sent: list[Message], given: str | None) -> dict[str, Any]:
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None:
        return {"status": None}
    headers = [(k.decode(), v.decode()) for k, v in start.get("headers", ())]
    ids = [v for k, v in headers if k.lower() == "x-correlation-id"]
    assert len(ids) == 1, headers
    (correlation_id,) = ids
    assert is_valid_correlation_id(correlation_id)
    if given is not None and is_valid_correlation_id(given):
        assert correlation_id == given
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    text = body.decode().replace(correlation_id, "<id>")
    others = sorted((k, v) for k, v in headers if k.lower() != "x-correlation-id")
    return {"status": start["status"], "headers": others, "body": text}


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith(("_created", "_sum", "_bucket")):
                continue  # timestamps and durations differ by nature
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _lines(stream_text: str) -> list[dict[str, Any]]:
    lines = []
    for line in map(json.loads, stream_text.splitlines()):
        line.pop("timestamp")
        line.pop("duration_ms", None)
        line["correlation_id"] = "<id>"
        if "span_id" in line:
            line["span_id"] = "<span>"
        if line.get("trace_id") not in (None, _TRACEPARENT.split("-")[1]):
            line["trace_id"] = "<generated>"
        lines.append(line)
    return lines


async def _run_script(app: ASGIApp, release: asyncio.Event) -> list[dict[str, Any]]:
    answers = []
    for request in _SCRIPT:
        headers = {k.decode(): v.decode() for k, v in request.scope["headers"]}
        given = headers.get("x-correlation-id")
        answers.append(_response(await request.run(app), given))
    # Shedding: two requests held in the handler, a third one shed, /healthz never shed.
    held = [asyncio.create_task(_Request("GET", "/slow").run(app)) for _ in range(2)]
    await asyncio.sleep(0.05)
    answers.append(_response(await _Request("GET", "/items/5").run(app), None))
    answers.append(_response(await _Request("GET", "/healthz").run(app), None))
    release.set()
    answers += [_response(sent, None) for sent in await asyncio.gather(*held)]
    release.clear()
    return answers


Build = Callable[[CollectorRegistry, asyncio.Event, TracerProvider | None], ASGIApp]


async def _observe(build: Build, log_lines: Any, *, traced: bool) -> dict[str, Any]:
    stream_start = len(log_lines.stream.getvalue())
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider() if traced else None
    if provider is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    release = asyncio.Event()
    answers = await _run_script(build(registry, release, provider), release)
    await asyncio.sleep(0)  # the access lines of the last loop pass are written
    await asyncio.sleep(0)
    spans = [
        {
            "name": s.name,
            "kind": str(s.kind),
            "status": str(s.status.status_code),
            "parent": None if s.parent is None else format(s.parent.trace_id, "032x"),
            "attributes": dict(s.attributes or {}),
            "events": [e.name for e in s.events],
        }
        for s in exporter.get_finished_spans()
    ]
    return {
        "answers": answers,
        "metrics": _samples(registry),
        "lines": _lines(log_lines.stream.getvalue()[stream_start:]),
        "spans": spans,
    }


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
async def test_the_one_layer_answers_counts_logs_and_traces_like_the_stack(
    log_lines: Any, traced: bool
) -> None:
    configure_logging(json=True, stream=log_lines.stream)

    fused = await _observe(_fused, log_lines, traced=traced)
    stacked = await _observe(_stacked, log_lines, traced=traced)

    assert fused["answers"] == stacked["answers"]
    statuses = [a["status"] for a in fused["answers"]]
    assert statuses == [
        *[200, 200, 200, 200, 200, 200, 413, 413, 408, 413, 404, 405, 405, 500, 200, None, 200],
        *[503, 200, 200, 200],
    ]
    assert fused["metrics"] == stacked["metrics"]
    assert fused["lines"] == stacked["lines"]
    assert (
        len([ln for ln in fused["lines"] if ln["event"] == "http.request_completed"]) == 19
    )  # /healthz is quiet
    assert fused["spans"] == stacked["spans"]
    if traced:
        assert len(fused["spans"]) == 21
    else:
        assert fused["spans"] == []
        (continued,) = [ln for ln in fused["lines"] if ln.get("path") == "/items/4"]
        assert continued["trace_id"] == _TRACEPARENT.split("-")[1]


async def test_a_nested_instance_passes_requests_through(registry: CollectorRegistry) -> None:
    inner_registry = CollectorRegistry()
    release = asyncio.Event()
    inner = _fused(inner_registry, release, None)
    outer = KitMiddleware(inner, service="outer", registry=registry)

    sent = await _Request("GET", "/items/1").run(outer)

    assert _response(sent, None)["status"] == 200
    counted = {k: v for k, v in _samples(registry).items() if k[0] == "http_requests_total"}
    assert list(counted.values()) == [1.0]
    assert not [k for k in _samples(inner_registry) if k[0] == "http_requests_total"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"body_timeout_seconds": 0}, "timeout_seconds"),
        ({"max_body_bytes": -1}, "max_body_bytes"),
        ({"log_sample_rate": 1.5}, "log_sample_rate"),
    ],
)
def test_out_of_range_settings_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KitMiddleware(PlainTextResponse("x"), **options)
