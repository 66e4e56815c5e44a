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
from collections.abc import Sequence
from typing import TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

__all__ = ["DEFAULT_LATENCY_BUCKETS", "counter", "gauge", "histogram"]

DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Latency buckets in seconds, from 1 ms (a cache hit) to 10 s (a timeout)."""

_M = TypeVar("_M", bound=MetricWrapperBase)
_lock = threading.Lock()
_instruments: dict[tuple[int, str], MetricWrapperBase] = {}


def _get_or_create(
    kind: type[_M], name: str, registry: CollectorRegistry | None, create: dict[str, object]
) -> _M:
    reg = REGISTRY if registry is None else registry
    key = (id(reg), name)
    with _lock:
        existing = _instruments.get(key)
        if existing is None:
            existing = kind(name, registry=reg, **create)  # type: ignore[arg-type]
            _instruments[key] = existing
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
