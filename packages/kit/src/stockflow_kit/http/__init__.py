"""HTTP for services built with Starlette or FastAPI: middleware and problem details.

Lift the kit into a service in one call, then configure logging and tracing once per
process in its composition root::

    app = FastAPI()
    instrument(app, service="inventory", errors=ErrorTable({OutOfStock: (409, "Out of stock")}))

Or compose the pieces yourself: the pure ASGI middleware of :mod:`.middleware` and the
RFC 9457 helpers of :mod:`.problems`.
"""

from stockflow_kit.http._instrument import instrument
from stockflow_kit.http._limits import DEFAULT_BODY_TIMEOUT_SECONDS, DEFAULT_MAX_IN_FLIGHT
from stockflow_kit.http.client import (
    IDEMPOTENCY_KEY_HEADER,
    DownstreamClientError,
    DownstreamError,
    DownstreamServerError,
    DownstreamStatusError,
    DownstreamTimeoutError,
    DownstreamTransportError,
    DownstreamUnavailableError,
    ResilientClient,
    is_downstream_failure,
)
from stockflow_kit.http.middleware import (
    CLIENT_CLOSED,
    DEFAULT_QUIET_PATHS,
    UNMATCHED,
    BodySizeLimitMiddleware,
    BodyTimeoutMiddleware,
    CorrelationMiddleware,
    LoadSheddingMiddleware,
    MetricsMiddleware,
    metrics_app,
    metrics_endpoint,
    metrics_route,
)
from stockflow_kit.http.problems import (
    ABOUT_BLANK,
    INTERNAL_ERROR_DETAIL,
    PROBLEM_MEDIA_TYPE,
    ErrorMapping,
    ErrorTable,
    Problem,
    ProblemMiddleware,
    http_exception_response,
    install_problem_handlers,
    internal_error_response,
    problem_response,
    status_title,
    validation_error_response,
)

__all__ = [
    "ABOUT_BLANK",
    "CLIENT_CLOSED",
    "DEFAULT_BODY_TIMEOUT_SECONDS",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_QUIET_PATHS",
    "IDEMPOTENCY_KEY_HEADER",
    "INTERNAL_ERROR_DETAIL",
    "PROBLEM_MEDIA_TYPE",
    "UNMATCHED",
    "BodySizeLimitMiddleware",
    "BodyTimeoutMiddleware",
    "CorrelationMiddleware",
    "DownstreamClientError",
    "DownstreamError",
    "DownstreamServerError",
    "DownstreamStatusError",
    "DownstreamTimeoutError",
    "DownstreamTransportError",
    "DownstreamUnavailableError",
    "ErrorMapping",
    "ErrorTable",
    "LoadSheddingMiddleware",
    "MetricsMiddleware",
    "Problem",
    "ProblemMiddleware",
    "ResilientClient",
    "http_exception_response",
    "install_problem_handlers",
    "instrument",
    "internal_error_response",
    "is_downstream_failure",
    "metrics_app",
    "metrics_endpoint",
    "metrics_route",
    "problem_response",
    "status_title",
    "validation_error_response",
]
