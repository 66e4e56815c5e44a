"""The skeleton of an internal service's ASGI app, built one way for every service.

An internal service (everyone but edge) is a FastAPI app instrumented by the kit with the
service's settings, with the probes (``/healthz``, ``/readyz``) open to all and its API behind
the service credential, which its OpenAPI document declares (``serviceCredential``)::

    app, require_service = internal_app(
        "orders", settings, errors=ERRORS, readiness=readiness, registry=registry,
        protected=["/orders"],
    )

    @app.get("/orders/{order_id}", dependencies=require_service)
    async def read(order_id: str) -> Response: ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from stockflow.platform.settings import ServiceSettings
from stockflow_kit.http import ErrorTable
from stockflow_kit.http.credentials import probe_routes, service_credential
from stockflow_kit.http.openapi import require_bearer_in_openapi
from stockflow_kit.observability.forwarding import Collectable

__all__ = ["CREDENTIAL_DESCRIPTION", "internal_app"]

CREDENTIAL_DESCRIPTION = "The service credential (edge and other services present it)."


def internal_app(
    service: str,
    settings: ServiceSettings,
    *,
    errors: ErrorTable,
    readiness: Callable[[], Awaitable[str | None]],
    protected: Sequence[str],
    registry: CollectorRegistry | None = None,
    metrics: Collectable | None = None,
) -> tuple[FastAPI, list[Any]]:
    """The app and the route dependency that requires the service credential.

    Args:
        service: The service's name (the OpenAPI title is ``stockflow <service>``).
        settings: Its settings: limits, logging and the credential come from them.
        errors: Its exceptions and their problem answers.
        readiness: Returns ``None`` when ready, else why not (``/readyz`` answers 503 with it).
        protected: Path prefixes whose operations the OpenAPI document marks as needing the
            credential (the dependency is what enforces it).
        registry: Where its metrics live; the default registry when ``None``.
        metrics: What ``/metrics`` serves when more than *registry* (see ``instrument``).
    """
    app = FastAPI(title=f"stockflow {service}", version="1", redirect_slashes=False)
    settings.instrument(app, errors=errors, registry=registry, metrics=metrics)
    app.router.routes.extend(probe_routes(readiness))
    require_bearer_in_openapi(
        app, name="serviceCredential", description=CREDENTIAL_DESCRIPTION, paths=list(protected)
    )
    return app, [Depends(service_credential(settings.token()))]
