"""Where the live console's figures come from: what edge already reaches.

* each downstream's ``/readyz`` and ``/metrics`` (parsed with ``prometheus_client.parser``),
  with a plain HTTP client of short timeouts: looking must not trip the breakers, fill the
  bulkheads or spend the retry budgets of the real calls;
* edge's own readiness and registry;
* edge's circuit breaker in front of each downstream (its :class:`ResilientClient`'s);
* the flow: the inventory's committed events per second and the orders' saga outcomes per
  minute, from the same scrapes;
* the console's last audit (:class:`ConsoleAudit`): the verdict for everyone, each check for
  staff;
* for staff: the latest orders (orders ``GET /orders``) and the stock of the SKUs ordered most
  in them (inventory ``GET /inventory/{sku}``), through edge's resilient clients as the staff
  principal ``edge-console``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from stockflow.edge.adapters.downstreams import Downstreams
from stockflow.edge.domain.console import (
    FlowTotals,
    RedTotals,
    bus_figures,
    busiest_skus,
    flow,
    flow_totals,
    red,
    red_totals,
)
from stockflow.edge.domain.identity import Principal
from stockflow.edge.service_layer.console_audit import ConsoleAudit
from stockflow.edge.service_layer.console_feed import ConsoleSnapshot

__all__ = ["CONSOLE_PRINCIPAL", "ScrapingSource"]

CONSOLE_PRINCIPAL: Final = Principal(user_id="edge-console", role="staff")
"""Who the console's staff calls are made as (the downstreams log and authorise it)."""

WINDOW_SECONDS: Final = 10.0
"""RED figures are over (at most) the last this many seconds."""


class ScrapingSource:
    def __init__(
        self,
        *,
        downstreams: Downstreams,
        registry: CollectorRegistry,
        readiness: Callable[[], Awaitable[str | None]],
        audit: ConsoleAudit | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        timeout: float = 0.8,
        orders: int = 10,
        skus: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._downstreams = downstreams
        self._registry = registry
        self._readiness = readiness
        self._audit = audit
        transports = transports or {}
        self._http = {
            name: httpx.AsyncClient(
                base_url=client.base_url,
                transport=transports.get(name),
                timeout=timeout,
                trust_env=False,
            )
            for name, client in downstreams.clients.items()
        }
        self._timeout = timeout
        self._orders = orders
        self._skus = skus
        self._clock = clock
        self._history: dict[str, deque[tuple[float, RedTotals, FlowTotals]]] = {}

    async def aclose(self) -> None:
        for http in self._http.values():
            await http.aclose()

    async def gather(self, *, staff: bool) -> ConsoleSnapshot:
        names = list(self._downstreams.clients)
        scraped = await asyncio.gather(*(self._scrape(n) for n in names))
        own = await self._own()
        now = self._clock()
        services = [self._service("edge", *own, now)]
        services += [self._service(n, *s, now) for n, s in zip(names, scraped, strict=True)]
        breakers = {
            n: {
                "state": c.breaker.state.value,
                "retry_after": round(c.breaker.retry_after(), 1),
            }
            for n, c in self._downstreams.clients.items()
        }
        public = {
            "at": time.time(),
            "services": services,
            "breakers": breakers,
            "flow": _flow(services),
            "audit": self._audit.public_json() if self._audit else None,
        }
        return ConsoleSnapshot(public, await self._staff(scraped, names) if staff else None)

    async def _own(self) -> tuple[bool, str | None, list[Metric] | None]:
        why = await self._readiness()
        text = generate_latest(self._registry).decode()
        return True, why, list(text_string_to_metric_families(text))

    async def _scrape(self, name: str) -> tuple[bool, str | None, list[Metric] | None]:
        """(reachable, why not ready or None, metric families or None)."""
        http = self._http[name]
        ready, metrics = http.get("/readyz"), http.get("/metrics")
        answers = await asyncio.gather(ready, metrics, return_exceptions=True)
        readyz, scrape = answers
        if isinstance(readyz, BaseException):
            return False, f"unreachable ({type(readyz).__name__})", None
        why = None if readyz.status_code == 200 else _why(readyz)
        families = None
        if not isinstance(scrape, BaseException) and scrape.status_code == 200:
            try:
                families = list(text_string_to_metric_families(scrape.text))
            except ValueError:
                families = None
        return True, why, families

    def _service(
        self,
        name: str,
        reachable: bool,
        why: str | None,
        families: list[Metric] | None,
        now: float,
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "name": name,
            "up": reachable,
            "ready": reachable and why is None,
            "why": why,
            "red": None,
            "bus": None,
            "flow": None,
        }
        if families is None:
            return row
        totals, work = red_totals(families), flow_totals(families)
        history = self._history.setdefault(name, deque())
        while history and now - history[0][0] > WINDOW_SECONDS:
            history.popleft()
        older = history[0] if history else None
        history.append((now, totals, work))
        since = now - older[0] if older else 0.0
        row["red"] = red(older[1] if older else None, totals, since).as_json()
        if work.events is not None or work.outcomes is not None:
            row["flow"] = flow(older[2] if older else None, work, since).as_json()
        bus = bus_figures(families)
        public = bus.public_json()
        exported = public["consumers"] or any(
            v is not None for k, v in public.items() if k != "consumers"
        )
        row["bus"] = public if exported else None
        return row

    async def _staff(
        self,
        scraped: Sequence[tuple[bool, str | None, list[Metric] | None]],
        names: Sequence[str],
    ) -> dict[str, Any]:
        dead: dict[str, Any] = {}
        for name, (_, _, families) in zip(names, scraped, strict=True):
            if families is not None:
                dead[name] = bus_figures(families).staff_json()
        orders, orders_error = await self._latest_orders()
        stock, stock_error = await self._stock(busiest_skus(orders, self._skus))
        return {
            "orders": [
                {k: o.get(k) for k in ("id", "customer_id", "status", "lines", "updated_at")}
                for o in orders
            ],
            "orders_error": orders_error,
            "stock": stock,
            "stock_error": stock_error,
            "dead_letters": dead,
            "audit_checks": self._audit.staff_json()["checks"] if self._audit else [],
        }

    async def _call(self, downstream: str, path: str, route: str, **params: str | int) -> Any:
        response = await self._downstreams.request(
            downstream,
            "GET",
            path,
            principal=CONSOLE_PRINCIPAL,
            headers={},
            route=route,
            params=params or None,
            deadline=self._timeout,
        )
        response.raise_for_status()
        return response.json()

    async def _latest_orders(self) -> tuple[list[Mapping[str, Any]], str | None]:
        try:
            page = await self._call("orders", "/orders", "/orders", limit=self._orders)
        except Exception as error:  # shown on the page, never fatal
            return [], _describe(error)
        orders = page.get("orders", []) if isinstance(page, dict) else []
        return [o for o in orders if isinstance(o, dict)], None

    async def _stock(self, skus: Sequence[str]) -> tuple[list[Mapping[str, Any]], str | None]:
        calls = [self._call("inventory", f"/inventory/{s}", "/inventory/{sku}") for s in skus]
        answers = await asyncio.gather(*calls, return_exceptions=True)
        stock: list[Mapping[str, Any]] = [a for a in answers if isinstance(a, dict)]
        errors = [a for a in answers if isinstance(a, BaseException)]
        return stock, _describe(errors[0]) if errors else None


def _flow(services: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The system's flow: the inventory's events/s and the orders' saga outcomes per minute
    (``None`` while that service's metrics cannot be read)."""
    events = outcomes = None
    for service in services:
        row = service.get("flow") or {}
        if row.get("events_per_second") is not None:
            events = (events or 0.0) + row["events_per_second"]
        if row.get("outcomes_per_minute") is not None:
            outcomes = {**(outcomes or {}), **row["outcomes_per_minute"]}
    return {"inventory_events_per_second": events, "saga_outcomes_per_minute": outcomes}


def _why(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("reason", "detail", "why", "status"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return f"HTTP {response.status_code}"


def _describe(error: BaseException) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return type(error).__name__
