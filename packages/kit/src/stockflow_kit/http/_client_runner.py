"""How :class:`~stockflow_kit.http.client.ResilientClient` runs one call: retries around attempts.

An attempt goes through the bulkhead (waiting no longer than the deadline), then the breaker,
then a CLIENT span and the per-attempt timeout around the transport's
``handle_async_request`` (httpx's ``AsyncClient.send`` adds only what calls between services
do not use: auth flows, redirects not followed anyway, a cookie jar, event hooks; it cost
~40 % of the client's CPU per call). 429 and 5xx
answers are raised *inside* the breaker, so that it counts them; other 4xx answers leave it
as successes and are raised after it. Every error is mapped to the client's exception tree
before the retry loop sees it, so the retry hook and the breaker's ``on=`` judge one tree.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Final

import httpx
import structlog
from prometheus_client import Counter, Histogram

from stockflow_kit.http._client_errors import (
    DownstreamClientError,
    DownstreamError,
    DownstreamStatusError,
    DownstreamTimeoutError,
    is_downstream_failure,
    status_error,
    transport_error,
)
from stockflow_kit.http._client_telemetry import (
    TRACER_NAME,
    ClientTracer,
    HttpClientMetrics,
    client_span,
    outcome_labels,
    record_response,
)
from stockflow_kit.resilience import (
    DEADLINE_HEADER,
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    Clock,
    Deadline,
    DeadlineExceededError,
    RandomSource,
    RetryBudget,
    Sleep,
    current_deadline,
    format_deadline_header,
    retrying,
)

__all__ = ["IDEMPOTENCY_KEY_HEADER", "IDEMPOTENT_METHODS", "CallRunner"]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods retried without an :data:`IDEMPOTENCY_KEY_HEADER` (RFC 9110, section 9.2.2)."""

IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
"""A request carrying this header may be retried whatever its method."""

_log = structlog.get_logger(TRACER_NAME)


@dataclass
class Call:
    """One call: the request (copied by each attempt) and what bounds it."""

    request: httpx.Request
    route: str | None
    deadline: Deadline | None
    attempt_timeout: float
    raise_for_status: bool = True
    attempts: int = 0

    def where(self) -> dict[str, str]:
        return {"method": self.request.method, "path": self.request.url.path}


@dataclass(frozen=True, kw_only=True)
class CallRunner:
    """The pieces shared by every call to one downstream, and the loop that uses them."""

    name: str
    http: httpx.AsyncClient
    transport: httpx.AsyncBaseTransport
    breaker: CircuitBreaker
    bulkhead: Bulkhead
    budget: RetryBudget
    metrics: HttpClientMetrics
    tracer: ClientTracer
    attempt_timeout: float
    total_timeout: float | None
    attempts: int
    backoff: tuple[float, float, float]  # wait_initial, wait_max, wait_exp_base
    clock: Clock
    sleep: Sleep
    rng: RandomSource | None
    _counters: dict[tuple[str, str, str, str], Counter] = field(default_factory=dict)
    _timers: dict[str, Histogram] = field(default_factory=dict)

    async def run(
        self,
        request: httpx.Request,
        *,
        route: str | None,
        deadline: Deadline | None,
        attempt_timeout: float | None,
        raise_for_status: bool,
    ) -> httpx.Response:
        """Make the attempts of a call; return the last response or raise the last error."""
        call = Call(
            request,
            route,
            self._deadline_for(deadline),
            self.attempt_timeout if attempt_timeout is None else attempt_timeout,
            raise_for_status,
        )
        try:
            return await self._retry(call)
        except DownstreamStatusError as exc:
            if not call.raise_for_status:
                return exc.response
            self._log_failure(call, exc)
            raise
        except DownstreamError as exc:
            self._log_failure(call, exc)
            raise

    def _deadline_for(self, explicit: Deadline | None) -> Deadline | None:
        given = explicit if explicit is not None else current_deadline()
        total = self.total_timeout
        own = None if total is None else Deadline(total, clock=self.clock)
        candidates = [d for d in (given, own) if d is not None]
        return min(candidates, key=Deadline.remaining, default=None)

    async def _retry(self, call: Call) -> httpx.Response:
        request = call.request
        if call.deadline is not None and call.deadline.expired:
            raise self._deadline_error(call) from DeadlineExceededError("deadline already passed")
        retryable = (
            request.method in IDEMPOTENT_METHODS or IDEMPOTENCY_KEY_HEADER in request.headers
        )
        wait_initial, wait_max, wait_exp_base = self.backoff
        async for attempt in retrying(
            on=_retry_verdict,
            attempts=self.attempts if retryable else 1,
            timeout=None,
            wait_initial=wait_initial,
            wait_max=wait_max,
            wait_exp_base=wait_exp_base,
            budget=self.budget,
            deadline=call.deadline,
            name=f"{self.name} {request.method}",
            clock=self.clock,
            sleep=self.sleep,
            rng=self.rng,
        ):
            with attempt:
                call.attempts = attempt.num
                return await self._attempt(call)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(self, call: Call) -> httpx.Response:
        try:
            response = await self._guarded_exchange(call)
            if response.status_code >= 400:
                raise status_error(response, downstream=self.name, **call.where())
        except (CircuitOpenError, BulkheadFullError) as exc:
            error = transport_error(exc, downstream=self.name, **call.where())
            self._count(call, error)
            raise error from exc
        except DownstreamError as exc:
            self._count(call, exc)
            raise
        self._count(call, response)
        return response

    async def _guarded_exchange(self, call: Call) -> httpx.Response:
        async with AsyncExitStack() as guards:
            try:
                remaining = None if call.deadline is None else call.deadline.remaining()
                async with asyncio.timeout(remaining):
                    await guards.enter_async_context(self.bulkhead)
            except TimeoutError as exc:  # the deadline passed in the bulkhead's queue
                raise self._deadline_error(call) from exc
            seconds = call.attempt_timeout
            if call.deadline is not None:
                seconds = call.deadline.timeout(seconds)
            if seconds <= 0:
                raise self._deadline_error(call) from DeadlineExceededError("no time left")
            await guards.enter_async_context(self.breaker)
            response = await self._exchange(call, seconds)
            if response.status_code >= 500 or response.status_code == 429:
                raise status_error(response, downstream=self.name, **call.where())
            return response
        raise AssertionError("unreachable: AsyncExitStack does not swallow exceptions")

    async def _exchange(self, call: Call, seconds: float) -> httpx.Response:
        # Each attempt sends its own trace context and remaining deadline: the first one
        # the call's request, each retry a copy (a request already sent is left as it was).
        request = call.request
        if call.attempts > 1:
            request = httpx.Request(
                request.method,
                request.url,
                headers=request.headers.copy(),
                stream=request.stream,
                extensions=dict(request.extensions),
            )
        request.extensions["timeout"] = {
            "connect": seconds,
            "read": seconds,
            "write": seconds,
            "pool": seconds,
        }
        if call.deadline is not None:
            request.headers[DEADLINE_HEADER] = format_deadline_header(call.deadline)
        with client_span(
            self.tracer, request, downstream=self.name, route=call.route, attempt=call.attempts
        ) as span:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(seconds):
                    response = await self._send(request, started)
            except (httpx.TransportError, TimeoutError) as exc:
                raise transport_error(exc, downstream=self.name, **call.where()) from exc
            finally:
                self._timer(request.method).observe(time.perf_counter() - started)
            record_response(span, response)
            return response

    async def _send(self, request: httpx.Request, started: float) -> httpx.Response:
        """What ``httpx.AsyncClient.send`` does for a request that follows no redirect, has
        no auth and keeps no cookies: the transport's answer, read."""
        if self.http.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        try:
            response = await self.transport.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request
            raise
        response.request = request
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - started)
        return response

    def _timer(self, method: str) -> Histogram:
        timer = self._timers.get(method)
        if timer is None:
            timer = self._timers[method] = self.metrics.duration.labels(self.name, method)
        return timer

    def _count(self, call: Call, outcome: httpx.Response | Exception) -> None:
        status, error = outcome_labels(outcome)
        key = (call.request.method, call.route or "", status, error)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.requests.labels(self.name, *key)
        counter.inc()

    def _deadline_error(self, call: Call) -> DownstreamTimeoutError:
        where = call.where()
        message = f"{where['method']} {where['path']} to {self.name!r}: the deadline passed"
        return DownstreamTimeoutError(message, downstream=self.name, **where)

    def _log_failure(self, call: Call, exc: DownstreamError) -> None:
        status, error = outcome_labels(exc)
        log = _log.info if isinstance(exc, DownstreamClientError) else _log.warning
        log(
            "http_client.request_failed",
            downstream=self.name,
            method=call.request.method,
            route=call.route,
            path=call.request.url.path,
            status=int(status) if status else None,
            error=error or None,
            attempts=call.attempts,
        )


def _retry_verdict(exc: Exception) -> bool | float:
    """The retry hook: 429/5xx (after ``Retry-After`` if given), timeouts, lost connections."""
    if not is_downstream_failure(exc):
        return False
    retry_after = exc.retry_after if isinstance(exc, DownstreamStatusError) else None
    return True if retry_after is None else retry_after
