"""The edge service's composition root: ``build(settings, *, bus)`` wires the token verifier,
the rate limiter, one resilient client per downstream, the profile cache and the HTTP app;
:data:`SPEC` declares the service to the platform. Edge keeps no database and uses no bus
(the runner hands it one like every service; it is left alone).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import httpx
import jwt
import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from stockflow.edge.adapters.auditor import ProcessAuditor
from stockflow.edge.adapters.console_source import ScrapingSource
from stockflow.edge.adapters.downstreams import DOWNSTREAMS, Downstreams
from stockflow.edge.adapters.rate_limits import LimitsRateLimiter, storage_for
from stockflow.edge.adapters.tokens import JwtVerifier
from stockflow.edge.domain.profile_cache import ProfileCache
from stockflow.edge.entrypoints.forwarding import Forwarder
from stockflow.edge.entrypoints.http import create_app
from stockflow.edge.service_layer.console_audit import ConsoleAudit
from stockflow.edge.service_layer.console_feed import ConsoleFeed
from stockflow.edge.service_layer.gate import Gate
from stockflow.edge.settings import EdgeSettings
from stockflow.platform.spec import ServiceSpec
from stockflow.platform.startup import StartupError, redact_url
from stockflow_kit.messaging import Bus

__all__ = ["SPEC", "EdgeService", "build"]

_log = structlog.get_logger("stockflow.edge")


@dataclass(eq=False)
class EdgeService:
    """One edge process: nothing to load at start; stop closes the clients and the limiter."""

    settings: EdgeSettings
    downstreams: Downstreams
    limiter: LimitsRateLimiter
    registry: CollectorRegistry
    console: ConsoleFeed = field(init=False)
    audit: ConsoleAudit = field(init=False)
    console_source: ScrapingSource = field(init=False)
    app: FastAPI = field(init=False)
    started: bool = False

    async def start(self) -> None:
        self.started = True
        _log.info(
            "edge.started",
            port=self.settings.port,
            downstreams={n: str(c.base_url) for n, c in self.downstreams.clients.items()},
            rate_limit=self.settings.rate_limit,
            rate_limit_storage=redact_url(self.settings.rate_limit_storage_url),
        )

    def begin_shutdown(self) -> None:
        """The HTTP server stops accepting: end the console's streams now, so that draining
        does not wait for browsers to leave."""
        self.console.close_soon()

    async def stop(self) -> None:
        await self.console.close()
        await self.audit.close()
        await self.console_source.aclose()
        if self.started:
            self.started = False
            await self.downstreams.aclose()
            await self.limiter.close()
            _log.info("edge.stopped")

    async def readiness(self) -> str | None:
        # Not the downstreams' health: edge answers (503s, degraded copies) when they are down.
        return None if self.started else "edge: not started"


def build(
    settings: EdgeSettings,
    *,
    bus: Bus | None = None,
    registry: CollectorRegistry | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    jwks_client: jwt.PyJWKClient | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> EdgeService:
    """Wire one edge service (*bus* is unused). *transports* replace the network to some
    downstreams and *jwks_client* the JWKS fetcher (tests).

    Raises:
        StartupError: no way to check tokens, or a rate limit setting that does not parse.
    """
    del bus  # edge neither publishes nor consumes
    registry = registry or CollectorRegistry()
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    try:
        verifier = JwtVerifier(
            secret=secret,
            jwks_url=settings.jwt_jwks_url,
            algorithms=settings.jwt_algorithms,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
            jwks_cache_seconds=settings.jwt_jwks_cache_seconds,
            jwks_client=jwks_client,
        )
        limiter = LimitsRateLimiter(
            settings.rate_limit,
            storage=storage_for(settings.rate_limit_storage_url),
            strategy=settings.rate_limit_strategy,
            timeout=settings.rate_limit_timeout_seconds,
            registry=registry,
        )
    except ValueError as error:
        raise StartupError(
            f"edge: {error} (EDGE_JWT_SECRET, EDGE_JWT_JWKS_URL, EDGE_JWT_ALGORITHMS,"
            " EDGE_RATE_LIMIT, EDGE_RATE_LIMIT_STORAGE_URL)"
        ) from None
    downstreams = Downstreams.from_settings(settings, registry=registry, transports=transports)
    service = EdgeService(
        settings=settings, downstreams=downstreams, limiter=limiter, registry=registry
    )
    service.audit = ConsoleAudit(
        ProcessAuditor(
            inventory_store_url=settings.audit_inventory_store_url,
            orders_store_url=settings.audit_orders_store_url,
            inventory_schema=settings.audit_inventory_schema,
            timeout=settings.audit_timeout_seconds,
        )
    )
    service.console_source = ScrapingSource(
        downstreams=downstreams,
        registry=registry,
        readiness=service.readiness,
        audit=service.audit,
        transports=transports,
    )
    service.console = ConsoleFeed(
        service.console_source, interval=settings.console_interval_seconds
    )
    service.app = create_app(
        gate=Gate(verifier, limiter),
        forwarder=Forwarder(downstreams),
        cache=ProfileCache(
            size=settings.profile_cache_size,
            ttl=settings.profile_cache_ttl_seconds,
            clock=clock,
        ),
        settings=settings,
        readiness=service.readiness,
        registry=registry,
        feed=service.console,
        audit=service.audit,
    )
    return service


SPEC: Final = ServiceSpec(
    name="edge",
    settings=EdgeSettings,
    build=build,
    port_offset=0,
    summary="the public entry: JWT auth, rate limits, composition",
    calls=DOWNSTREAMS,
    audits=("inventory", "orders"),
)
"""The edge service as the platform's runners see it."""
