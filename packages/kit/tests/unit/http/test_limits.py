from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from stockflow_kit.http import (
    BodySizeLimitMiddleware,
    BodyTimeoutMiddleware,
    CorrelationMiddleware,
    LoadSheddingMiddleware,
    install_problem_handlers,
)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _echo_app(limit: int) -> Starlette:
    async def echo(request: Request) -> Response:
        return PlainTextResponse(f"{len(await request.body())} bytes")

    app = Starlette(
        routes=[Route("/echo", echo, methods=["POST"])],
        middleware=[
            Middleware(CorrelationMiddleware),
            Middleware(BodySizeLimitMiddleware, max_body_bytes=limit),
        ],
    )
    install_problem_handlers(app)
    return app


def _assert_413(response: Any) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 413
    assert body["title"] == "Content Too Large"
    assert body["detail"] == "The request body exceeds the limit of 10 bytes."
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]


async def test_a_body_within_the_limit_reaches_the_application(send) -> None:
    response = await send(_echo_app(10), "POST", "/echo", content=b"0123456789")

    assert response.text == "10 bytes"


async def test_a_content_length_over_the_limit_gets_413_before_the_application_runs(
    send,
) -> None:
    response = await send(_echo_app(10), "POST", "/echo", content=b"x" * 11)

    _assert_413(response)


async def test_a_streamed_body_over_the_limit_gets_413(send) -> None:
    response = await send(_echo_app(10), "POST", "/echo", content=_chunks(b"01234", b"56789", b"!"))

    _assert_413(response)


async def test_a_streamed_body_read_by_a_bare_asgi_app_gets_413_from_the_middleware(
    drive,
) -> None:
    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await PlainTextResponse("read")(scope, receive, send)

    middleware = BodySizeLimitMiddleware(reader, max_body_bytes=10)

    messages = await drive(middleware, [b"01234", b"56789", b"!"], path="/upload")

    assert messages[0]["status"] == 413
    assert json.loads(messages[1]["body"])["instance"] == "/upload"


async def test_a_disconnect_passes_through_the_body_limit_uncounted(drive) -> None:
    received: list[str] = []

    async def patient(scope: Scope, receive: Receive, send: Send) -> None:
        received.extend([(await receive())["type"], (await receive())["type"]])
        await PlainTextResponse("ok")(scope, receive, send)

    messages = await drive(BodySizeLimitMiddleware(patient, max_body_bytes=0), [b""])

    assert received == ["http.request", "http.disconnect"]
    assert messages[0]["status"] == 200


async def test_an_oversized_body_read_after_the_response_started_propagates(drive) -> None:
    async def late_reader(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            pass

    middleware = BodySizeLimitMiddleware(late_reader, max_body_bytes=1)

    with pytest.raises(HTTPException, match="413"):
        await drive(middleware, [b"ab", b"cd"])


async def test_an_unparsable_content_length_is_left_to_the_streamed_count(drive) -> None:
    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await PlainTextResponse("ok")(scope, receive, send)

    middleware = BodySizeLimitMiddleware(ok, max_body_bytes=10)

    messages = await drive(middleware, [b"tiny"], headers=[(b"content-length", b"many")])

    assert messages[0]["status"] == 200


def test_a_negative_body_limit_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        BodySizeLimitMiddleware(PlainTextResponse("x"), max_body_bytes=-1)


class _Gate:
    """An ASGI app that holds each request until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered.set()
        await self.release.wait()
        await PlainTextResponse("done")(scope, receive, send)


async def test_requests_beyond_the_limit_get_503_with_retry_after(send) -> None:
    gate = _Gate()
    shedder = LoadSheddingMiddleware(gate, max_in_flight=1, retry_after_seconds=7)
    app = CorrelationMiddleware(shedder)

    first = asyncio.create_task(send(app, "GET", "/work"))
    await gate.entered.wait()
    shed = await send(app, "GET", "/work")
    gate.release.set()
    admitted = await first

    assert admitted.status_code == 200
    assert shed.status_code == 503
    assert shed.headers["Retry-After"] == "7"
    assert shed.headers["content-type"] == "application/problem+json"
    body = shed.json()
    assert body["status"] == 503
    assert body["correlation_id"] == shed.headers["X-Correlation-ID"]
    assert shedder.in_flight == 0


async def test_exempt_paths_are_never_shed(send) -> None:
    gate = _Gate()
    app = LoadSheddingMiddleware(gate, max_in_flight=1)

    first = asyncio.create_task(send(app, "GET", "/work"))
    await gate.entered.wait()
    probe = asyncio.create_task(send(app, "GET", "/healthz"))
    await asyncio.sleep(0)
    gate.release.set()

    assert (await first).status_code == 200
    assert (await probe).status_code == 200


async def test_other_scope_types_are_not_limited() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    await LoadSheddingMiddleware(app, max_in_flight=1)({"type": "lifespan"}, receive, send)
    await BodySizeLimitMiddleware(app, max_body_bytes=0)({"type": "lifespan"}, receive, send)

    assert seen == ["lifespan", "lifespan"]


def test_a_shedding_limit_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LoadSheddingMiddleware(PlainTextResponse("x"), max_in_flight=0)


@pytest.mark.parametrize(
    ("headers", "wrapped"),
    [
        ([], False),
        ([(b"content-length", b"0")], False),
        ([(b"content-length", b"5")], True),
        ([(b"transfer-encoding", b"chunked")], True),
        ([(b"content-length", b"0"), (b"transfer-encoding", b"chunked")], True),
    ],
    ids=["no-headers", "length-0", "length-5", "chunked", "length-0-and-chunked"],
)
async def test_only_a_request_that_may_carry_a_body_gets_a_limited_receive(
    headers: list[tuple[bytes, bytes]], wrapped: bool
) -> None:
    seen: list[Receive] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(receive)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/",
        "headers": headers,
    }
    await BodySizeLimitMiddleware(app, max_body_bytes=10)(scope, receive, send)
    await BodyTimeoutMiddleware(app, timeout_seconds=1.0)(scope, receive, send)

    # A GET without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3): nothing to
    # limit or time, so the middleware pass the request on as it came (no wrapper per request).
    assert [r is not receive for r in seen] == [wrapped, wrapped]
    seen.clear()
    http2 = {**scope, "http_version": "2"}  # bodies framed without either header: always limited
    await BodySizeLimitMiddleware(app, max_body_bytes=10)(http2, receive, send)
    await BodyTimeoutMiddleware(app, timeout_seconds=1.0)(http2, receive, send)
    assert [r is not receive for r in seen] == [True, True]
