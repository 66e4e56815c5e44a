"""Prometheus instruments, created once per registry.

Every kit component takes an optional :class:`prometheus_client.CollectorRegistry` (the
process-wide default when omitted) and creates its instruments through :func:`counter`,
:func:`gauge` and :func:`histogram`. Asking twice for the same name in the same registry
returns the same instrument instead of raising ``Duplicated timeseries``, so several apps,
clients or breakers can live in one process (and in one test session).

Naming follows ``<namespace>_<thing>_<unit or total>``: ``http_requests_total``,
``http_request_duration_seconds``, ``circuit_breaker_state``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

__all__ = [
    "DEFAULT_LATENCY_BUCKETS",
    "HttpServerMetrics",
    "counter",
    "gauge",
    "histogram",
    "http_server_metrics",
]

DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Latency buckets in seconds, from 1 ms (a cache hit) to 10 s (a timeout)."""

_M = TypeVar("_M", bound=MetricWrapperBase)
_lock = threading.Lock()
# Keyed weakly by the registry itself: an id() could be reused by a new registry after the
# old one is garbage-collected, handing out instruments registered in a dead registry.
_instruments: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, MetricWrapperBase]] = (
    weakref.WeakKeyDictionary()
)


def _get_or_create(
    kind: type[_M], name: str, registry: CollectorRegistry | None, create: dict[str, object]
) -> _M:
    reg = REGISTRY if registry is None else registry
    with _lock:
        by_name = _instruments.setdefault(reg, {})
        existing = by_name.get(name)
        if existing is None:
            existing = kind(name, registry=reg, **create)  # type: ignore[arg-type]
            by_name[name] = existing
    if not isinstance(existing, kind):
        msg = f"metric {name!r} already exists as {type(existing).__name__}, not {kind.__name__}"
        raise TypeError(msg)
    return existing


def counter(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    registry: CollectorRegistry | None = None,
) -> Counter:
    """Return the counter *name* in *registry*, creating it on first use.

    Args:
        name: Metric name without the ``_total`` suffix (prometheus-client adds it).
        documentation: The HELP text.
        labelnames: Label names; must be the same on every call for one name.
        registry: Where to register; the process-wide default when ``None``.
    """
    return _get_or_create(
        Counter, name, registry, {"documentation": documentation, "labelnames": labelnames}
    )


def gauge(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    registry: CollectorRegistry | None = None,
    multiprocess_mode: str = "all",
) -> Gauge:
    """Return the gauge *name* in *registry*, creating it on first use."""
    return _get_or_create(
        Gauge,
        name,
        registry,
        {
            "documentation": documentation,
            "labelnames": labelnames,
            "multiprocess_mode": multiprocess_mode,
        },
    )


def histogram(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    registry: CollectorRegistry | None = None,
    buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS,
) -> Histogram:
    """Return the histogram *name* in *registry*, creating it on first use.

    Args:
        buckets: Upper bounds; :data:`DEFAULT_LATENCY_BUCKETS` (seconds) unless given.
    """
    return _get_or_create(
        Histogram,
        name,
        registry,
        {"documentation": documentation, "labelnames": labelnames, "buckets": tuple(buckets)},
    )


@dataclass(frozen=True)
class HttpServerMetrics:
    """The RED instruments of an HTTP server (rate, errors, duration), plus concurrency.

    Attributes:
        requests: ``http_requests_total{method,route,status}``, one per finished request.
            Errors are the ``status=~"5.."`` share of it.
        duration: ``http_request_duration_seconds{method,route}``, from the first byte
            of the request reaching the middleware to the last byte of the response.
        in_flight: ``http_requests_in_flight{method}``, requests being handled right now.

    ``route`` is always a route *template* (``/inventory/{sku}``) or ``<unmatched>``,
    never a raw path, so its cardinality is bounded by the application's routes.
    """

    requests: Counter
    duration: Histogram
    in_flight: Gauge


def http_server_metrics(registry: CollectorRegistry | None = None) -> HttpServerMetrics:
    """Return the HTTP server instruments of *registry*, creating them on first use.

    Args:
        registry: Where to register; the process-wide default when ``None``.
    """
    return HttpServerMetrics(
        requests=counter(
            "http_requests",
            "HTTP requests handled, by method, route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        ),
        duration=histogram(
            "http_request_duration_seconds",
            "Time to handle an HTTP request, by method and route template.",
            ("method", "route"),
            registry=registry,
        ),
        in_flight=gauge(
            "http_requests_in_flight",
            "HTTP requests being handled, by method.",
            ("method",),
            registry=registry,
            multiprocess_mode="livesum",
        ),
    )
