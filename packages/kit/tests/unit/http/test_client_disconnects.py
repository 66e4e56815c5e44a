"""Clients that hang up mid-body (499) or trickle it (408), against a real uvicorn.

A raw socket on a free port sends the headers and part of the body, waits until the
application is reading it, then closes (a hang-up) or sends nothing more (a trickle).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockflow_kit.http import instrument
from stockflow_kit.observability import configure_logging


class _Receipt(BaseModel):
    qty: int


class _Server:
    """uvicorn serving *app*; ``reading`` is set once the application asks for the body."""

    def __init__(self, app: ASGIApp, port: int) -> None:
        self.port = port
        self.reading = asyncio.Event()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self._signalling(app),
                host="127.0.0.1",
                port=port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )

    def _signalling(self, app: ASGIApp) -> ASGIApp:
        async def signalling(scope: Scope, receive: Receive, send: Send) -> None:
            async def receive_noted() -> Message:
                self.reading.set()
                return await receive()

            await app(scope, receive_noted, send)

        return signalling


def _app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()
    instrument(app, service="test", registry=registry, body_timeout_seconds=0.3)

    @app.post("/raw")
    async def raw(request: Request) -> Response:
        return Response(await request.body())

    @app.post("/model")
    async def model(receipt: _Receipt) -> dict[str, int]:  # FastAPI reads the body itself
        return {"qty": receipt.qty}

    return app


@pytest.fixture
async def server(
    registry: CollectorRegistry, unused_tcp_port: int, log_lines: Any
) -> AsyncIterator[_Server]:
    configure_logging(json=True, stream=log_lines.stream)
    running = _Server(_app(registry), unused_tcp_port)
    task = asyncio.create_task(running.server.serve())
    async with asyncio.timeout(10):
        while not running.server.started:
            if task.done():
                await task  # startup failed: show why
            await asyncio.sleep(0.01)
    yield running
    running.server.should_exit = True
    await task


async def _hang_up_mid_body(server: _Server, path: str) -> None:
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n".encode()
        + b'{"qty": 1'
    )
    await writer.drain()
    await asyncio.wait_for(server.reading.wait(), 5)
    writer.close()
    await writer.wait_closed()


def _count(registry: CollectorRegistry, path: str, status: str) -> float:
    value = registry.get_sample_value(
        "http_requests_total", {"method": "POST", "route": path, "status": status}
    )
    return value or 0.0


async def _finished(registry: CollectorRegistry, path: str) -> None:
    # The server notices the hang-up on its own schedule: wait until the request is counted.
    for _ in range(500):
        statuses = ("499", "500", "400", "200")
        if any(_count(registry, path, s) for s in statuses):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request was never counted")


@pytest.mark.parametrize("path", ["/raw", "/model"])
async def test_a_client_that_hangs_up_mid_body_is_counted_as_499_and_logged_without_traceback(
    server: _Server, registry: CollectorRegistry, log_lines: Any, path: str
) -> None:
    await _hang_up_mid_body(server, path)
    await _finished(registry, path)

    assert _count(registry, path, "499") == 1
    assert _count(registry, path, "500") == 0
    assert _count(registry, path, "400") == 0
    [line] = log_lines.events("http.request_completed")
    assert line["status"] == 499
    assert line["level"] == "info"
    assert log_lines.events("http.unhandled_exception") == []
    assert "Traceback" not in log_lines.stream.getvalue()
    records = [json.loads(x) for x in log_lines.stream.getvalue().splitlines()]
    assert all("exception" not in r for r in records)


async def test_a_client_that_stalls_mid_body_gets_a_408_and_its_connection_closed(
    server: _Server, registry: CollectorRegistry, log_lines: Any
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /raw HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n" + b"0123456789")
    await writer.drain()

    async with asyncio.timeout(10):
        response = await reader.read()  # up to EOF: the server closes the connection
    writer.close()

    assert response.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in response.lower()
    assert _count(registry, "/raw", "408") == 1
    [line] = log_lines.events("http.request_completed")
    assert (line["status"], line["level"]) == (408, "info")
    assert "Traceback" not in log_lines.stream.getvalue()
