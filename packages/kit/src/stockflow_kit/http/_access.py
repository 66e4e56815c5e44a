"""The RED metrics and the access log of each request: :class:`MetricsMiddleware`."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Final

import structlog
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockflow_kit.http._routes import UNMATCHED, method_label, route_template
from stockflow_kit.observability.correlation import get_correlation_id
from stockflow_kit.observability.logs import write_json_line
from stockflow_kit.observability.metrics import http_server_metrics
from stockflow_kit.observability.tracing import current_trace_ids

__all__ = ["CLIENT_CLOSED", "DEFAULT_QUIET_PATHS", "MetricsMiddleware", "RequestRecorder"]

CLIENT_CLOSED: Final = 499
"""The status recorded for a request whose client hung up before the response (nginx's 499)."""

DEFAULT_QUIET_PATHS: Final = frozenset({"/metrics", "/healthz", "/readyz"})
"""Paths left out of the access log by default (they are still counted in the metrics)."""

_LOGGER: Final = "stockflow_kit.http"
_EVENT: Final = "http.request_completed"
_log = structlog.get_logger(_LOGGER)


class RequestRecorder:
    """What :class:`MetricsMiddleware` records of each request, for the layers that record it.

    :class:`MetricsMiddleware` and :class:`~stockflow_kit.http.KitMiddleware` share it:
    :meth:`in_flight` is the gauge to raise while a request runs, :meth:`finish` counts the
    request, observes its duration and writes its access line. The arguments are those of
    :class:`MetricsMiddleware`.

    Raises:
        ValueError: *log_sample_rate* is outside 0 to 1.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        log_requests: bool = True,
        quiet_paths: Iterable[str] = DEFAULT_QUIET_PATHS,
        log_sample_rate: float = 1.0,
        slow_request_seconds: float = 1.0,
    ) -> None:
        if not 0.0 <= log_sample_rate <= 1.0:
            msg = f"log_sample_rate must be between 0 and 1, got {log_sample_rate}"
            raise ValueError(msg)
        self.metrics = http_server_metrics(registry)
        self.log_requests = log_requests
        self.quiet_paths = frozenset(quiet_paths)
        self.log_sample_rate = log_sample_rate
        self.slow_request_seconds = slow_request_seconds
        self._sample_credit = 0.0
        self._in_flight: dict[str, Any] = {}
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def in_flight(self, method: str) -> Any:
        """The in-flight gauge of *method* (a :func:`method_label`), looked up once."""
        gauge = self._in_flight.get(method)
        if gauge is None:
            gauge = self._in_flight.setdefault(method, self.metrics.in_flight.labels(method))
        return gauge

    def finish(
        self,
        scope: Scope,
        method: str,
        root_path: str,
        status: int | None,
        elapsed: float,
        *,
        disconnected: bool,
    ) -> None:
        """Count a finished request and write its access line.

        A request without a response (*status* ``None``) is a :data:`CLIENT_CLOSED` when the
        client had hung up (*disconnected*), else a 500.
        """
        if status is None:
            status = CLIENT_CLOSED if disconnected else 500
        route = route_template(scope, root_path=root_path) or UNMATCHED
        requests, duration = self._labelled(method, route, status)
        requests.inc()
        duration.observe(elapsed)
        if self.log_requests and scope["path"] not in self.quiet_paths:
            self._log(scope, route, status, elapsed)

    def _labelled(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.duration.labels(method, route),
            )
            self._series[key] = series
        return series

    def _log(self, scope: Scope, route: str, status: int, elapsed: float) -> None:
        sampled = False
        if self.log_sample_rate < 1.0 and status < 400 and elapsed < self.slow_request_seconds:
            self._sample_credit += self.log_sample_rate
            if self._sample_credit < 1.0:
                return
            self._sample_credit -= 1.0
            sampled = True
        client = scope.get("client")
        fields: dict[str, Any] = {
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "client": client[0] if client else None,
            "correlation_id": get_correlation_id(),
        }
        if sampled:
            fields["sample_rate"] = self.log_sample_rate
        error = status >= 500
        # One encode and one write with the kit's JSON logging (which adds the trace ids);
        # structlog's chain otherwise.
        level = logging.ERROR if error else logging.INFO
        if not write_json_line(_LOGGER, level, _EVENT, fields, safe_fields=True):
            fields.update(current_trace_ids())
            (_log.error if error else _log.info)(_EVENT, **fields)


class MetricsMiddleware:
    """Record RED metrics for each HTTP request and write one access-log line.

    The instruments are those of
    :func:`~stockflow_kit.observability.metrics.http_server_metrics`: the route label is the
    matched route *template* (:data:`UNMATCHED` when no route matched), never the raw path;
    unknown methods are counted as ``_OTHER``. A request whose application raised or
    returned before responding is counted as a 500, unless the client had hung up (the
    application saw ``http.disconnect``): that is a :data:`CLIENT_CLOSED` (499), not a
    server error. The labelled series are looked up once per method, route and status.

    The access-log line ``http.request_completed`` has ``method``, ``route``, ``path``,
    ``status``, ``duration_ms``, ``client``, ``correlation_id`` and ``trace_id``/``span_id``
    (when there is a span); it is written at *info*, or *error* for 5xx. With
    *log_sample_rate* below 1, only that share of the fast successful requests (status
    below 400 and faster than *slow_request_seconds*) is written, evenly spread (every
    fourth at 0.25), with ``sample_rate`` on the line; errors and slow requests are always
    written.

    Args:
        app: The ASGI application to wrap.
        registry: Where the instruments live; the process-wide default when ``None``.
        log_requests: Write the access log; ``True`` by default.
        quiet_paths: Exact paths left out of the access log (not out of the metrics);
            :data:`DEFAULT_QUIET_PATHS` by default.
        log_sample_rate: The share of fast successful requests written, from 0 to 1;
            1 (every request) by default.
        slow_request_seconds: Requests at least this long are always written; 1 second by
            default.

    Raises:
        ValueError: *log_sample_rate* is outside 0 to 1.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: CollectorRegistry | None = None,
        log_requests: bool = True,
        quiet_paths: Iterable[str] = DEFAULT_QUIET_PATHS,
        log_sample_rate: float = 1.0,
        slow_request_seconds: float = 1.0,
    ) -> None:
        self.app = app
        self.recorder = RequestRecorder(
            registry=registry,
            log_requests=log_requests,
            quiet_paths=quiet_paths,
            log_sample_rate=log_sample_rate,
            slow_request_seconds=slow_request_seconds,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = method_label(scope["method"])
        root_path = str(scope.get("root_path", ""))
        status: int | None = None
        disconnected = False

        async def receive_watching() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        recorder = self.recorder
        in_flight = recorder.in_flight(method)
        in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive_watching, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            in_flight.dec()
            recorder.finish(scope, method, root_path, status, elapsed, disconnected=disconnected)
