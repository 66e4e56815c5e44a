"""The internal services edge calls: one kit :class:`ResilientClient` each (its own breaker,
bulkhead, retry budget and timeouts).

Every call sends the service credential, the caller's identity (:mod:`stockflow.contracts.
identity`, from the verified token only: what a client sent under those names is never
forwarded), ``X-Correlation-ID`` (the request's, bound by the kit's middleware) and the W3C
``traceparent`` (the kit client's CLIENT span, a child of the request's span), besides the
headers the route passes on (``Idempotency-Key``, which also makes a POST retryable,
``If-Match``, ``Content-Type``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx
from prometheus_client import CollectorRegistry

from stockflow.contracts.identity import ROLE_HEADER, USER_HEADER
from stockflow.edge.domain.identity import Principal
from stockflow.edge.settings import EdgeSettings
from stockflow_kit.http import ResilientClient
from stockflow_kit.resilience import Deadline

__all__ = ["DOWNSTREAMS", "Downstreams"]

DOWNSTREAMS: Final = ("profiles", "inventory", "orders", "notifications")
"""The services edge calls (its ``ServiceSpec.calls``)."""

_SET_HERE: Final = frozenset({"authorization", USER_HEADER.lower(), ROLE_HEADER.lower()})


@dataclass(frozen=True)
class Downstreams:
    """One resilient client per downstream."""

    clients: Mapping[str, ResilientClient]
    service_token: str | None

    @classmethod
    def from_settings(
        cls,
        settings: EdgeSettings,
        *,
        registry: CollectorRegistry,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> Downstreams:
        """A client per downstream at ``settings.<name>_url``; *transports* replace the
        network for some of them (tests: ``httpx.ASGITransport`` of an in-process app)."""
        transports = transports or {}
        clients = {}
        for name in DOWNSTREAMS:
            clients[name] = ResilientClient(
                name,
                str(getattr(settings, f"{name}_url")),
                transport=transports.get(name),
                timeout=settings.downstream_timeout_seconds,
                total_timeout=settings.downstream_deadline_seconds,
                attempts=settings.downstream_attempts,
                failure_threshold=settings.breaker_failure_threshold,
                reset_timeout=settings.breaker_reset_seconds,
                max_concurrent=settings.downstream_max_concurrent,
                max_queue=settings.downstream_max_concurrent * 4,
                registry=registry,
            )
        return cls(clients, settings.token())

    def __getitem__(self, name: str) -> ResilientClient:
        return self.clients[name]

    async def request(
        self,
        downstream: str,
        method: str,
        path: str,
        *,
        principal: Principal,
        headers: Mapping[str, str],
        route: str,
        params: Mapping[str, str | int] | None = None,
        content: bytes | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Call *downstream* for *principal*: its identity and the service credential are
        added to *headers* (and win over any of the same names)."""
        sent = {k: v for k, v in headers.items() if k.lower() not in _SET_HERE}
        sent |= {USER_HEADER: principal.user_id, ROLE_HEADER: principal.role}
        if self.service_token is not None:
            sent["Authorization"] = f"Bearer {self.service_token}"
        return await self.clients[downstream].request(
            method,
            path,
            params=params,
            headers=sent,
            content=content,
            route=route,
            deadline=None if deadline is None else Deadline(deadline),
        )

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
