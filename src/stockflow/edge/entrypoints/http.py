"""The edge HTTP app: the public API of API.md ("Edge API"), every route behind the gate
(a bearer JWT, then the client's rate limit), composed from the internal services.

Routes check the caller's role and the input, then forward (``Forwarder``): the answers of
the downstreams pass through, their failures become 503s (:mod:`.http_errors`); ``GET /me``
falls back to the last known profile (:mod:`.me`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from stockflow.edge.domain.profile_cache import ProfileCache
from stockflow.edge.entrypoints.console import console_routes
from stockflow.edge.entrypoints.forwarding import Forwarder
from stockflow.edge.entrypoints.http_errors import ERRORS, install_error_handlers
from stockflow.edge.entrypoints.me import add_me_routes
from stockflow.edge.entrypoints.openapi_docs import PUBLIC_PATHS
from stockflow.edge.entrypoints.routes import add_routes
from stockflow.edge.service_layer.console_audit import ConsoleAudit
from stockflow.edge.service_layer.console_feed import ConsoleFeed
from stockflow.edge.service_layer.gate import Gate
from stockflow.edge.settings import EdgeSettings
from stockflow_kit.http.credentials import probe_routes
from stockflow_kit.http.openapi import require_bearer_in_openapi

__all__ = ["create_app"]


def create_app(
    *,
    gate: Gate,
    forwarder: Forwarder,
    cache: ProfileCache,
    settings: EdgeSettings,
    readiness: Callable[[], Awaitable[str | None]],
    registry: CollectorRegistry,
    feed: ConsoleFeed,
    audit: ConsoleAudit,
) -> FastAPI:
    """The edge ASGI app. ``readiness()`` returns ``None`` when ready, else why not."""
    app = FastAPI(title="stockflow edge", version="1", redirect_slashes=False)
    app.state.gate = gate
    settings.instrument(app, errors=ERRORS, registry=registry)
    install_error_handlers(app)
    app.router.routes.extend(probe_routes(readiness))
    for route in console_routes(feed, audit):  # API routes: the metrics label them by template
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        app.add_api_route(route.path, route.endpoint, methods=methods, include_in_schema=False)
    require_bearer_in_openapi(
        app,
        name="bearerAuth",
        description="A JWT with `sub` (user id) and `role` (customer or staff):"
        " `stockflow token --user alice --role customer` prints one.",
        paths=PUBLIC_PATHS,
    )
    add_me_routes(
        app, forwarder, cache, registry=registry, deadline=settings.profile_deadline_seconds
    )
    add_routes(app, forwarder)
    return app
