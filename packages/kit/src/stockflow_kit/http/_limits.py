"""Admission control: request body size limit, slow-body timeout and load shedding."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Final

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockflow_kit.http._problem import problem_response

DEFAULT_UNSHED_PATHS: Final = frozenset({"/healthz", "/metrics"})
"""Paths never shed by default: liveness probes and scrapes must answer under load."""


DEFAULT_MAX_IN_FLIGHT: Final = 64
"""The recommended ``max_in_flight`` of a service: 64 requests handled at once.

Measured twice with ``stockflow bench http --shedding-sweep none,32,64,128,256,512``
(1,000 concurrent closed-loop writers on the inventory's ``POST /inventory/{sku}/receipts``,
shed writers waiting the ``Retry-After`` second; 2 shared cores, SQLite; figures in
``docs/benchmarks.md``). With no limit every write waits: p50 0.46-0.53 s, p99 0.55-0.61 s,
1,840-2,150 writes/s. At 64 the admitted writes' p99 was 0.17-0.19 s in both runs, for
71-82% of that throughput, about 38% of the attempts told to come back. 32 cuts the p99
a little more (0.14 s) for less throughput (the writer's batches shrink); 128 and above
were not stable between the two runs (p99 0.23-0.44 s) and approach the unlimited queue.
At the usual load (32 connections) a limit of 64 never sheds.
"""

DEFAULT_BODY_TIMEOUT_SECONDS: Final = 10.0
"""How long a request body may take to arrive, by default: 10 s (a 1 MiB body at 100 KiB/s)."""


class _BodyTimeoutError(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"The request body did not arrive within {seconds:g} seconds.",
            headers={"Connection": "close"},
        )


class BodyTooLargeError(HTTPException):
    # An HTTPException, so that frameworks reading the body (FastAPI re-raises those) and
    # the app's own HTTPException handler turn it into the 413 problem.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit} bytes.")


class BodySizeLimitMiddleware:
    """Reject request bodies larger than *max_body_bytes* with a 413 problem.

    A ``Content-Length`` above the limit is rejected before the application runs. Bodies
    without one (chunked transfer) are counted as the application reads them: the read that
    crosses the limit raises an ``HTTPException(413)``, which the application's problem
    handler or, failing that, this middleware turns into the 413 response.

    Args:
        app: The ASGI application to wrap.
        max_body_bytes: The largest accepted body, in bytes (0 allows only empty bodies).

    Raises:
        ValueError: *max_body_bytes* is negative.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        if max_body_bytes < 0:
            msg = f"max_body_bytes must not be negative, got {max_body_bytes}"
            raise ValueError(msg)
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _has_no_body(scope):
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await too_large(scope, receive, send, limit)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive(receive, limit), send_tracking)
        except BodyTooLargeError:
            if started:
                raise
            await too_large(scope, receive, send, limit)


class BodyTimeoutMiddleware:
    """Answer 408 to a request whose body does not arrive within *timeout_seconds*.

    The clock starts when the application first asks for the body; a client that trickles
    it (or sends part of it and stalls) gets a 408 problem with ``Connection: close`` and
    its connection is closed, instead of holding a slot until it gives up. The 408 is
    counted and logged by the access log like any 4xx (no traceback). Reads after the last
    body chunk (an application waiting for ``http.disconnect``) are not limited.

    Only the body is covered: uvicorn closes connections idle between requests after its
    ``timeout_keep_alive`` (5 s by default), and headers that never complete never reach
    an ASGI application.

    Args:
        app: The ASGI application to wrap.
        timeout_seconds: How long the whole body may take; above 0.

    Raises:
        ValueError: *timeout_seconds* is not above 0.
    """

    def __init__(self, app: ASGIApp, *, timeout_seconds: float) -> None:
        if timeout_seconds <= 0:
            msg = f"timeout_seconds must be above 0, got {timeout_seconds}"
            raise ValueError(msg)
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _has_no_body(scope):
            await self.app(scope, receive, send)
            return
        await self.app(scope, timed_receive(receive, self.timeout_seconds), send)


class LoadSheddingMiddleware:
    """Answer 503 with ``Retry-After`` once *max_in_flight* requests are being handled.

    Shedding early keeps latency bounded for the requests already admitted, instead of
    queueing everyone into a timeout. Requests to *exempt_paths* are neither shed nor
    counted.

    Args:
        app: The ASGI application to wrap.
        max_in_flight: How many requests may be handled at once (at least 1).
        retry_after_seconds: The ``Retry-After`` value; 1 second by default.
        exempt_paths: Exact paths never shed; :data:`DEFAULT_UNSHED_PATHS` by default.

    Raises:
        ValueError: *max_in_flight* is below 1.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        retry_after_seconds: int = 1,
        exempt_paths: Iterable[str] = DEFAULT_UNSHED_PATHS,
    ) -> None:
        if max_in_flight < 1:
            msg = f"max_in_flight must be at least 1, got {max_in_flight}"
            raise ValueError(msg)
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_seconds = retry_after_seconds
        self.exempt_paths = frozenset(exempt_paths)
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """The number of admitted requests being handled now."""
        return self._in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        if self._in_flight >= self.max_in_flight:
            await shed(scope, receive, send, self.retry_after_seconds)
            return
        self._in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._in_flight -= 1


def limited_receive(receive: Receive, limit: int) -> Receive:
    """*receive*, raising :class:`BodyTooLargeError` once the body read exceeds *limit* bytes."""
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLargeError(limit)
        return message

    return receive_limited


def timed_receive(receive: Receive, seconds: float) -> Receive:
    """*receive*, raising a 408 ``HTTPException`` when the whole body takes over *seconds*.

    The clock starts at the first read; reads after the last body chunk are not limited.
    """
    deadline: float | None = None
    complete = False

    async def receive_in_time() -> Message:
        nonlocal deadline, complete
        if complete:
            return await receive()
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + seconds
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise _BodyTimeoutError(seconds) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            complete = True
        return message

    return receive_in_time


async def shed(scope: Scope, receive: Receive, send: Send, retry_after_seconds: int) -> None:
    """Answer the 503 problem of a shed request, with ``Retry-After``."""
    response = problem_response(
        503,
        detail="The service is overloaded; retry later.",
        instance=scope["path"],
        headers={"Retry-After": str(retry_after_seconds)},
    )
    await response(scope, receive, send)


async def too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    """Answer the 413 problem of a body over *limit* bytes."""
    response = problem_response(
        413,
        detail=f"The request body exceeds the limit of {limit} bytes.",
        instance=scope["path"],
    )
    await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return declared_length(value)
    return None


def declared_length(value: bytes) -> int | None:
    """A ``Content-Length`` value as a number; ``None`` when it is not one."""
    try:
        return int(value)
    except ValueError:
        return None


HTTP1: Final = frozenset({"1.0", "1.1"})
"""The HTTP versions whose requests declare a body by header (RFC 9112 6.3)."""


def _has_no_body(scope: Scope) -> bool:
    """Whether an HTTP/1.x request declares that it has no body: ``Content-Length: 0``, or
    neither ``Content-Length`` nor ``Transfer-Encoding`` (such a request has none, RFC 9112
    6.3, and the server enforces it). Such a request (most GETs) has nothing to limit or to
    wait for, so the body middleware pass it on unwrapped. HTTP/2 frames bodies without
    either header, so it is always wrapped."""
    if scope.get("http_version") not in HTTP1:
        return False
    empty = True
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return False
        if name == b"content-length" and value.strip() != b"0":
            empty = False
    return empty
