"""The kit's outer middleware in one layer: :class:`KitMiddleware`, what :func:`instrument` installs."""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Final

from opentelemetry import trace
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockflow_kit.http._access import DEFAULT_QUIET_PATHS, RequestRecorder
from stockflow_kit.http._limits import (
    DEFAULT_UNSHED_PATHS,
    HTTP1,
    BodyTooLargeError,
    declared_length,
    limited_receive,
    shed,
    timed_receive,
    too_large,
)
from stockflow_kit.http._request import (
    HEADER_NAME,
    SCOPE_KEY,
    TRACEPARENT,
    ContextKey,
    RequestTracing,
    correlation_id_for,
    finish_span,
    with_correlation_header,
)
from stockflow_kit.http._routes import method_label
from stockflow_kit.observability.correlation import bind_correlation

__all__ = ["KitMiddleware"]

_NO_SPAN: Final = nullcontext()


class KitMiddleware:
    """Everything :func:`~stockflow_kit.http.instrument` puts around an application, in one layer.

    It does what this stack of the kit's middleware does, outermost first, and answers,
    counts and logs exactly as it would: :class:`~stockflow_kit.http.CorrelationMiddleware`
    (*service*, *tracer_provider*), :class:`~stockflow_kit.http.MetricsMiddleware` (*registry*,
    *log_requests*, *quiet_paths*, *log_sample_rate*, *slow_request_seconds*),
    :class:`~stockflow_kit.http.LoadSheddingMiddleware` (when *max_in_flight* is given;
    *retry_after_seconds*, *exempt_paths*), :class:`~stockflow_kit.http.BodyTimeoutMiddleware`
    (when *body_timeout_seconds* is given) and
    :class:`~stockflow_kit.http.BodySizeLimitMiddleware` (when *max_body_bytes* is given).
    The arguments are theirs; a test holds the two to the same responses, metrics and
    access lines.

    Why one layer: each layer of the stack is a call, a check of the scope and, for most, a
    pair of closures per request, and each reads the request headers again; on the path of
    every request that was a fifth of what the kit adds to bare FastAPI (measured with
    ``stockflow bench http --in-process``; ``docs/benchmarks.md``). Here the headers are read
    once (the correlation id, ``traceparent`` and whether a body is declared), one ``send``
    records the status and sets the correlation header, and a request without a body
    (most GETs) gets the server's ``receive`` wrapped only to see a client's hang-up.

    The five classes stay for wiring the pieces by hand. A nested instance (a mounted,
    instrumented sub-application) passes requests straight through: the outer one has
    bound, limited and counted them already.

    Raises:
        ValueError: an argument is out of range, as for the classes above.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str | None = None,
        tracer_provider: TracerProvider | None = None,
        registry: CollectorRegistry | None = None,
        log_requests: bool = True,
        quiet_paths: Iterable[str] = DEFAULT_QUIET_PATHS,
        log_sample_rate: float = 1.0,
        slow_request_seconds: float = 1.0,
        max_in_flight: int | None = None,
        retry_after_seconds: int = 1,
        exempt_paths: Iterable[str] = DEFAULT_UNSHED_PATHS,
        body_timeout_seconds: float | None = None,
        max_body_bytes: int | None = None,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            msg = f"max_in_flight must be at least 1, got {max_in_flight}"
            raise ValueError(msg)
        if body_timeout_seconds is not None and body_timeout_seconds <= 0:
            msg = f"timeout_seconds must be above 0, got {body_timeout_seconds}"
            raise ValueError(msg)
        if max_body_bytes is not None and max_body_bytes < 0:
            msg = f"max_body_bytes must not be negative, got {max_body_bytes}"
            raise ValueError(msg)
        self.app = app
        self.service = service
        self.recorder = RequestRecorder(
            registry=registry,
            log_requests=log_requests,
            quiet_paths=quiet_paths,
            log_sample_rate=log_sample_rate,
            slow_request_seconds=slow_request_seconds,
        )
        self.max_in_flight = max_in_flight
        self.retry_after_seconds = retry_after_seconds
        self.exempt_paths = frozenset(exempt_paths)
        self.body_timeout_seconds = body_timeout_seconds
        self.max_body_bytes = max_body_bytes
        self._service = None if service is None else ContextKey("service", service)
        self._tracing = RequestTracing(tracer_provider)
        self._admitted = 0

    @property
    def in_flight(self) -> int:
        """The number of admitted requests being handled now (those shedding counts)."""
        return self._admitted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One function on purpose: every request runs it, and each call saved is measured.
        if scope["type"] != "http" or SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        incoming: bytes | None = None
        traceparent = False
        declared: bytes | None = None
        bodiless = scope.get("http_version") in HTTP1
        for name, value in scope["headers"]:
            if name == HEADER_NAME:
                if incoming is None:
                    incoming = value
            elif name == TRACEPARENT:
                traceparent = True
            elif name == b"content-length":
                if declared is None:
                    declared = value
                if value.strip() != b"0":
                    bodiless = False
            elif name == b"transfer-encoding":
                bodiless = False
        correlation_id = correlation_id_for(incoming)
        scope[SCOPE_KEY] = correlation_id
        root_path = str(scope.get("root_path", ""))
        span, owned = self._tracing.span_for(scope, traceparent=traceparent)
        header = (HEADER_NAME, correlation_id.encode("latin-1"))
        status: int | None = None
        disconnected = False

        async def receive_watching() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = with_correlation_header(message, header)
            await send(message)

        inner_receive: Receive = receive_watching
        limit = self.max_body_bytes
        if not bodiless:
            if self.body_timeout_seconds is not None:
                inner_receive = timed_receive(inner_receive, self.body_timeout_seconds)
            if limit is not None:
                inner_receive = limited_receive(inner_receive, limit)
        method = method_label(scope["method"])
        recorder = self.recorder
        in_flight = recorder.in_flight(method)
        error: BaseException | None = None
        token = None if self._service is None else self._service.bind()
        in_flight.inc()
        started = time.perf_counter()
        try:
            with (
                bind_correlation(correlation_id),
                _NO_SPAN
                if span is None
                else trace.use_span(span, record_exception=False, set_status_on_exception=False),
            ):
                try:
                    counted = (
                        self.max_in_flight is not None and scope["path"] not in self.exempt_paths
                    )
                    if counted and self._admitted >= (self.max_in_flight or 0):
                        await shed(scope, receive, send_with_id, self.retry_after_seconds)
                    elif (
                        limit is not None
                        and not bodiless
                        and declared is not None
                        and (length := declared_length(declared)) is not None
                        and length > limit
                    ):
                        await too_large(scope, receive, send_with_id, limit)
                    else:
                        if counted:
                            self._admitted += 1
                        try:
                            await self.app(scope, inner_receive, send_with_id)
                        except BodyTooLargeError:
                            if status is not None or limit is None:
                                raise
                            await too_large(scope, receive, send_with_id, limit)
                        finally:
                            if counted:
                                self._admitted -= 1
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    elapsed = time.perf_counter() - started
                    in_flight.dec()
                    recorder.finish(
                        scope, method, root_path, status, elapsed, disconnected=disconnected
                    )
                    if owned and span is not None:
                        finish_span(span, scope, root_path=root_path, status=status, error=error)
        finally:
            if token is not None and self._service is not None:
                self._service.reset(token)
