"""One call to give a Starlette or FastAPI application the kit's HTTP behaviour."""

from __future__ import annotations

from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from stockflow_kit.http._exposition import metrics_endpoint
from stockflow_kit.http._limits import DEFAULT_BODY_TIMEOUT_SECONDS
from stockflow_kit.http._problem import ErrorTable
from stockflow_kit.http._server import KitMiddleware
from stockflow_kit.http.problems import install_problem_handlers
from stockflow_kit.observability.forwarding import Collectable


def instrument(
    app: Starlette,
    *,
    service: str,
    errors: ErrorTable | None = None,
    registry: CollectorRegistry | None = None,
    max_body_bytes: int | None = 1_048_576,
    max_in_flight: int | None = None,
    body_timeout_seconds: float | None = DEFAULT_BODY_TIMEOUT_SECONDS,
    log_requests: bool = True,
    log_sample_rate: float = 1.0,
    slow_request_seconds: float = 1.0,
    tracer_provider: TracerProvider | None = None,
    metrics_path: str | None = "/metrics",
    metrics_source: Collectable | None = None,
) -> None:
    """Install problem responses, the kit's middleware and ``GET /metrics`` on *app*.

    ::

        app = FastAPI()
        instrument(app, service="inventory", errors=ErrorTable({OutOfStock: (409, "Out of stock")}))

    The middleware, outermost first: :class:`KitMiddleware` (what
    :class:`CorrelationMiddleware`, :class:`MetricsMiddleware`,
    :class:`LoadSheddingMiddleware` (with *max_in_flight*), :class:`BodyTimeoutMiddleware`
    (with *body_timeout_seconds*) and :class:`BodySizeLimitMiddleware` (with
    *max_body_bytes*) do, stacked in that order, in one layer), then middleware the
    application added *before* this call, then
    :class:`~stockflow_kit.http.problems.ProblemMiddleware` around the routing. So every
    response, a 413, a 503 or a 500 included, carries ``X-Correlation-ID`` and is counted,
    and no error leaves without a problem body. Middleware added *after* this call sits
    outside all of them.

    Logging and tracing are configured per process, not here: see
    :func:`~stockflow_kit.observability.configure_logging` and
    :func:`~stockflow_kit.observability.configure_tracing`.

    Args:
        app: The application, not started yet.
        service: The service name, bound as ``service`` on the log lines of each request.
        errors: The application's error table; an empty one when ``None``.
        registry: Where the HTTP metrics live and what ``/metrics`` serves; the
            process-wide default when ``None``. Give each application its own registry
            when several share a process.
        max_body_bytes: The request body limit; 1 MiB by default, ``None`` for no limit.
        max_in_flight: Shed requests beyond this many in flight; ``None`` (the default)
            never sheds. :data:`~stockflow_kit.http.DEFAULT_MAX_IN_FLIGHT` is the measured
            recommendation for a service.
        body_timeout_seconds: Answer 408 when a request body takes longer to arrive;
            :data:`~stockflow_kit.http.DEFAULT_BODY_TIMEOUT_SECONDS` (10 s) by default,
            ``None`` for no limit.
        log_requests: Write one access-log line per request; ``True`` by default.
        log_sample_rate: The share of fast successful requests written to the access log
            (errors and slow requests always are); 1 by default. See
            :class:`MetricsMiddleware`.
        slow_request_seconds: Requests at least this long are always logged; 1 s by default.
        tracer_provider: Where spans go; the global provider when ``None``.
        metrics_source: What ``/metrics`` serves when not just *registry*: e.g. a
            :class:`~stockflow_kit.observability.forwarding.MergedMetrics` of the registry
            and a child process's forwarded metrics.
        metrics_path: Where to serve the metrics; ``/metrics`` by default, ``None`` for
            nowhere (if they are served on another port).

    Raises:
        RuntimeError: *app* has already started, or is already instrumented.
    """
    installed: list[object] = [m.cls for m in app.user_middleware]
    if KitMiddleware in installed:
        msg = "this application is already instrumented"
        raise RuntimeError(msg)
    install_problem_handlers(app, errors)
    app.add_middleware(
        KitMiddleware,
        service=service,
        tracer_provider=tracer_provider,
        registry=registry,
        log_requests=log_requests,
        log_sample_rate=log_sample_rate,
        slow_request_seconds=slow_request_seconds,
        max_in_flight=max_in_flight,
        body_timeout_seconds=body_timeout_seconds,
        max_body_bytes=max_body_bytes,
    )
    if metrics_path is not None:
        app.add_route(
            metrics_path,
            metrics_endpoint(registry if metrics_source is None else metrics_source),
            methods=["GET"],
            include_in_schema=False,
        )
