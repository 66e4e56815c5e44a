"""Per-client rate limits with the ``limits`` package, on its async storages.

``memory://`` keeps the counts in this process (the embedded deployment); ``redis://host:port``
keeps them in Redis (``limits``' async Redis storage, on coredis), so every edge replica
counts against one limit per client.

When the storage fails (Redis down, or slower than ``timeout``), the request is let through
(fail OPEN): a rate limiter must not turn a Redis outage into an outage of the whole public
API. Each such request counts in ``edge_rate_limit_storage_failures_total``; the first one
logs ``edge.rate_limit_storage_failed`` (a warning), and for ``cooldown`` seconds the storage
is not asked again (no request pays the timeout meanwhile); the first success after it logs
``edge.rate_limit_storage_recovered``. Clients may then exceed their limit by what one
replica's other defences allow (its bulkheads and load shedding still hold).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import Final, Literal

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
)
from limits.storage import storage_from_string
from prometheus_client import CollectorRegistry, Counter

from stockflow.edge.domain.identity import RateLimitedError

__all__ = ["LimitsRateLimiter", "storage_for"]

_log = structlog.get_logger("stockflow.edge")
_KEY_PREFIX: Final = "stockflow-edge"

Strategy = Literal["moving-window", "fixed-window"]


def storage_for(url: str) -> Storage:
    """The ``limits`` async storage of *url*: ``memory://`` or ``redis://host:port[/db]``.

    Raises:
        ValueError: another scheme.
    """
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryStorage()
    if scheme in ("redis", "rediss"):
        storage = storage_from_string(f"async+{url}", wrap_exceptions=True, key_prefix=_KEY_PREFIX)
        assert isinstance(storage, Storage)  # an async+ scheme gives an async storage
        return storage
    raise ValueError(f"rate_limit_storage_url must be memory:// or redis://…, not {url!r}")


class LimitsRateLimiter:
    """Count requests per client against *limits* (``"50/second;1000/minute"``)."""

    def __init__(
        self,
        limits: str,
        *,
        storage: Storage,
        strategy: Strategy = "moving-window",
        timeout: float = 0.2,
        cooldown: float = 5.0,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            self._items: list[RateLimitItem] = parse_many(limits)
        except ValueError:
            raise ValueError(f"rate_limit {limits!r} is not in the limits notation") from None
        if not self._items:
            raise ValueError("rate_limit names no limit")
        self._storage = storage
        kind = MovingWindowRateLimiter if strategy == "moving-window" else FixedWindowRateLimiter
        self._limiter: RateLimiter = kind(storage)
        self._timeout = timeout
        self._cooldown = cooldown
        self._clock = clock
        self._failing_until: float | None = None
        self.failures = Counter(
            "edge_rate_limit_storage_failures_total",
            "Requests let through unlimited because the rate limit storage failed.",
            registry=registry,
        )
        self.limited = Counter(
            "edge_rate_limited_total", "Requests refused with a 429.", registry=registry
        )

    async def hit(self, client: str) -> None:
        if self._failing_until is not None and self._clock() < self._failing_until:
            self.failures.inc()
            return
        try:
            async with asyncio.timeout(self._timeout):
                refused = await self._over(client)
        except Exception as error:  # storage down or slow: fail open (module docstring)
            self._failed(error)
            return
        if self._failing_until is not None:
            self._failing_until = None
            _log.info("edge.rate_limit_storage_recovered")
        if refused is not None:
            self.limited.inc()
            raise RateLimitedError(f"more than {refused[0]}: slow down", retry_after=refused[1])

    async def _over(self, client: str) -> tuple[str, float] | None:
        for item in self._items:
            if not await self._limiter.hit(item, client):
                stats = await self._limiter.get_window_stats(item, client)
                wait = max(1.0, math.ceil(stats.reset_time - time.time()))
                return str(item), wait
        return None

    def _failed(self, error: Exception) -> None:
        self.failures.inc()
        if self._failing_until is None:
            _log.warning(
                "edge.rate_limit_storage_failed",
                error=repr(error)[:300],
                action="requests pass unlimited",
                retry_in_seconds=self._cooldown,
            )
        self._failing_until = self._clock() + self._cooldown

    async def close(self) -> None:
        """Stop the memory storage's expiry task, or close the Redis connections (``limits``
        has no close of its own: its storages are reached into, defensively)."""
        timer = getattr(self._storage, "timer", None)  # MemoryStorage's expiry task
        if isinstance(timer, asyncio.Task) and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        pool = getattr(client, "connection_pool", None)  # coredis.Redis's
        disconnect = getattr(pool, "disconnect", None)
        if callable(disconnect):
            with contextlib.suppress(Exception):
                disconnect()
