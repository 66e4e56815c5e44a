"""``GET /metrics``: the Prometheus exposition of one registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from stockflow_kit.observability.forwarding import Collectable


def metrics_endpoint(
    registry: CollectorRegistry | Collectable | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """Return a request handler answering with the metrics of *registry*.

    The format follows the ``Accept`` header: Prometheus text format 0.0.4 unless
    OpenMetrics is asked for.

    Args:
        registry: What to expose (a registry, or a view such as
            :class:`~stockflow_kit.observability.forwarding.MergedMetrics`); the process-wide
            default when ``None``.
    """
    source = REGISTRY if registry is None else registry

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(source), headers={"Content-Type": content_type})

    return metrics


def metrics_app(registry: CollectorRegistry | None = None) -> ASGIApp:
    """Return an ASGI app answering every HTTP request with the metrics of *registry*.

    For serving metrics on a port of their own. In an application prefer
    :func:`metrics_route`: mounting an app at ``/metrics`` makes Starlette redirect
    ``/metrics`` to ``/metrics/`` (a 307).

    Args:
        registry: What to expose; the process-wide default when ``None``.
    """
    endpoint = metrics_endpoint(registry)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    return app


def metrics_route(registry: CollectorRegistry | None = None, *, path: str = "/metrics") -> Route:
    """Return a route answering ``GET`` (and ``HEAD``) at exactly *path* with the metrics.

    For ``Starlette(routes=[...])``; :func:`stockflow_kit.http.instrument` adds the same
    route to an existing application.

    Args:
        registry: What to expose; the process-wide default when ``None``.
        path: Where; ``/metrics`` by default.
    """
    return Route(path, metrics_endpoint(registry), methods=["GET"], include_in_schema=False)
