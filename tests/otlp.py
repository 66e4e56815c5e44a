"""A stand-in OTLP/HTTP trace collector for tests (no collector runs here, toolchain.md).

A tiny ASGI app that parses ``ExportTraceServiceRequest`` protobufs, the wire format of a real
collector, and keeps every span it was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stockflow_kit.net import free_port


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    links: tuple[str, ...]
    """The trace ids of the span's links."""


class Collector:
    def __init__(self) -> None:
        self.received_spans: list[ReceivedSpan] = []
        self.received = asyncio.Event()

    @property
    def spans(self) -> list[tuple[str, str, str]]:
        """(service, span name, trace id) of every span received."""
        return [(s.service, s.name, s.trace_id) for s in self.received_spans]

    async def traces(self, request: Request) -> Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.body())
        for resource_spans in export.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.received_spans.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            links=tuple(link.trace_id.hex() for link in span.links),
                        )
                    )
        self.received.set()
        body = ExportTraceServiceResponse().SerializeToString()
        return Response(body, media_type="application/x-protobuf")


@contextlib.asynccontextmanager
async def serving(collector: Collector) -> AsyncIterator[int]:
    """Serve *collector* on a free port of 127.0.0.1 (yielded) for the block."""
    port = free_port()
    app = Starlette(routes=[Route("/v1/traces", collector.traces, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
