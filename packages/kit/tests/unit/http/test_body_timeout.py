"""A request body that does not arrive in time is a 408 problem that closes the connection."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from starlette.responses import Response
from starlette.types import Message

from stockflow_kit.http import BodyTimeoutMiddleware, instrument


def _app(registry: CollectorRegistry, seconds: float) -> FastAPI:
    app = FastAPI()
    instrument(app, service="test", registry=registry, body_timeout_seconds=seconds)

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        return Response(f"{len(await request.body())} bytes")

    return app


async def _post(app: FastAPI, chunks: list[Message], *, stall: bool) -> list[Message]:
    """One POST whose body is *chunks*, then (with *stall*) a client that sends nothing more."""
    never = asyncio.Event()
    sent: list[Message] = []

    async def receive() -> Message:
        if chunks:
            return chunks.pop(0)
        if stall:
            await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "root_path": "",
        "headers": [(b"content-length", b"10")],
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    return sent


async def test_a_body_that_stalls_gets_a_408_problem_with_connection_close(registry) -> None:
    app = _app(registry, 0.05)

    sent = await _post(
        app, [{"type": "http.request", "body": b"01234", "more_body": True}], stall=True
    )

    start, body = sent[0], sent[1]
    assert start["status"] == 408
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body["body"])
    assert problem["detail"] == "The request body did not arrive within 0.05 seconds."
    labels = {"method": "POST", "route": "/upload", "status": "408"}
    assert registry.get_sample_value("http_requests_total", labels) == 1


async def test_a_body_that_arrives_in_time_is_read_whole(registry) -> None:
    app = _app(registry, 5.0)

    sent = await _post(
        app,
        [
            {"type": "http.request", "body": b"01234", "more_body": True},
            {"type": "http.request", "body": b"56789", "more_body": False},
        ],
        stall=False,
    )

    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"10 bytes"


async def test_reads_after_the_last_chunk_are_not_limited() -> None:
    seen: list[Message] = []
    gone = asyncio.Event()

    async def app(scope, receive, send) -> None:
        seen.append(await receive())
        seen.append(await receive())  # waits for the disconnect, past the deadline

    async def receive() -> Message:
        if not seen:
            return {"type": "http.request", "body": b"x", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    middleware = BodyTimeoutMiddleware(app, timeout_seconds=0.01)
    task = asyncio.create_task(middleware({"type": "http"}, receive, None))
    await asyncio.sleep(0.05)  # well past the deadline, on purpose: nothing may time out
    gone.set()
    await task

    assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]


def test_the_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="above 0"):
        BodyTimeoutMiddleware(FastAPI(), timeout_seconds=0)
