"""Fixtures for the HTTP tests: in-process clients, a raw ASGI driver, spans and log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of this test's own, so no metric leaks between tests."""
    return CollectorRegistry()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider of this test's own (the global one is never touched here)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def send() -> Callable[..., Awaitable[httpx.Response]]:
    """``await send(app, method, url, **httpx_kwargs)``: one request, in process."""

    async def send(app: ASGIApp, method: str, url: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, url, **kwargs)

    return send


@pytest.fixture
def drive() -> Callable[..., Awaitable[list[Message]]]:
    """``await drive(app, body_chunks, **scope)``: run one raw HTTP request, return what was sent."""

    async def drive(app: ASGIApp, chunks: Sequence[bytes] = (), **scope: Any) -> list[Message]:
        pending = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ] or [{"type": "http.request", "body": b"", "more_body": False}]
        sent: list[Message] = []

        async def receive() -> Message:
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        full_scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "root_path": "",
            "headers": [],
            "query_string": b"",
            **scope,
        }
        await app(full_scope, receive, send)
        return sent

    return drive


class LogLines:
    """A stream for configure_logging() and the JSON lines written to it."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def events(self, event: str) -> list[dict[str, Any]]:
        lines = self.stream.getvalue().splitlines()
        return [r for r in map(json.loads, lines) if r.get("event") == event]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Where configure_logging() writes; the root logger is restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield LogLines()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
