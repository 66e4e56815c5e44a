"""A resilient HTTP client for one downstream service, over :class:`httpx.AsyncClient`.

Make one :class:`ResilientClient` per downstream and keep it for the life of the process
(open it in a ``lifespan``). Each call is wrapped like this::

    deadline: explicit deadline=, else current_deadline(), capped by total_timeout
    └─ retries: idempotent methods or an Idempotency-Key only; full jitter or Retry-After;
       │        never past the deadline; each retry granted by the client's RetryBudget
       └─ attempt: Bulkhead ─ CircuitBreaker ─ CLIENT span ─ per-attempt timeout ─ the
                 transport: httpx's request and response over aiohttp's pool
                 (:class:`~stockflow_kit.http.transport.PooledTransport`)

and each attempt carries ``X-Correlation-ID`` (the bound one, else a new one per call), the
W3C ``traceparent``/``tracestate`` of its span and the remaining budget in
:data:`~stockflow_kit.resilience.DEADLINE_HEADER`.

Exceptions: httpx's and the resilience toolkit's are mapped at this boundary, once, and the
original is chained as ``__cause__`` (status errors carry the response instead)::

    DownstreamError                    .downstream .method .path
     ├── DownstreamUnavailableError    not reached, fail fast       .reason .retry_after
     │                                 reason: connect_error | circuit_open | bulkhead_full
     ├── DownstreamTimeoutError        an attempt timed out, or the deadline passed
     ├── DownstreamTransportError      the connection broke mid-exchange
     └── DownstreamStatusError         an error answer   .status .response .problem .retry_after
          ├── DownstreamClientError    4xx
          └── DownstreamServerError    5xx

==========================================  =========  ===================================
outcome of an attempt                       retried?   counts as a breaker failure?
==========================================  =========  ===================================
2xx, 3xx, 4xx other than 429                no         no (a success)
429, 5xx                                    yes        yes
timeout, connect error, broken exchange     yes        yes
circuit open, bulkhead full                 no         no (the downstream was not called)
==========================================  =========  ===================================

The request goes to the transport directly, not through ``httpx.AsyncClient.send``: no
redirect is followed (as before), and there is no auth flow, event hook or cookie jar (a jar
shared by every caller of a downstream would mix their cookies). The URL of a path is parsed
once and kept (a few thousand paths), and without a tracer provider no CLIENT span is started
(the caller's trace context is forwarded as it is). Together they cut the client's own CPU
per call by more than half (``stockflow bench clients``, docs/benchmarks.md).

Retries honour ``Retry-After`` (seconds or an HTTP-date) instead of the backoff, and give up
at once when it, or the backoff, would reach the deadline. Metrics, per attempt:
``http_client_requests_total{downstream,method,route,status,error}`` and
``http_client_request_duration_seconds{downstream,method}`` (see :class:`HttpClientMetrics`),
besides the breaker's, the bulkhead's and the budget's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, TypedDict, Unpack

import httpx
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry

from stockflow_kit.http._client_errors import (
    DownstreamClientError,
    DownstreamError,
    DownstreamServerError,
    DownstreamStatusError,
    DownstreamTimeoutError,
    DownstreamTransportError,
    DownstreamUnavailableError,
    UnavailableReason,
    is_downstream_failure,
    parse_retry_after,
)
from stockflow_kit.http._client_runner import (
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENT_METHODS,
    CallRunner,
)
from stockflow_kit.http._client_telemetry import (
    ClientTracer,
    HttpClientMetrics,
    http_client_metrics,
)
from stockflow_kit.http.transport import PooledTransport
from stockflow_kit.observability.correlation import (
    CORRELATION_HEADER,
    get_correlation_id,
    new_correlation_id,
)
from stockflow_kit.resilience import (
    Bulkhead,
    CircuitBreaker,
    Clock,
    Deadline,
    RandomSource,
    RetryBudget,
    Sleep,
)

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "IDEMPOTENT_METHODS",
    "DownstreamClientError",
    "DownstreamError",
    "DownstreamServerError",
    "DownstreamStatusError",
    "DownstreamTimeoutError",
    "DownstreamTransportError",
    "DownstreamUnavailableError",
    "HttpClientMetrics",
    "RequestOptions",
    "ResilientClient",
    "UnavailableReason",
    "http_client_metrics",
    "is_downstream_failure",
    "parse_retry_after",
]


_PARSED_URLS = 4096


class RequestOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`ResilientClient.request` (and of ``get`` and so on)."""

    params: Mapping[str, str | int | float | bool]
    headers: Mapping[str, str]
    content: bytes | str
    json: Any
    idempotency_key: str
    route: str
    deadline: Deadline
    attempt_timeout: float
    raise_for_status: bool


class ResilientClient:
    """Call one downstream with timeouts, a deadline, retries, a breaker and a bulkhead.

    Use it as ``async with ResilientClient(...) as client:`` or call :meth:`aclose`. The
    breaker, bulkhead and retry budget are built from the simple arguments unless given;
    all three are shared by every call of this client.

    Args:
        name: The downstream's name: metric label, breaker, bulkhead and budget name.
        base_url: Where the downstream listens, such as ``http://inventory:8000``.
        transport: The httpx transport; when ``None``, a :class:`PooledTransport` (aiohttp's
            connection pool, ~6x cheaper per request than httpx's own) with room for the
            bulkhead's *max_concurrent* calls. Tests pass :class:`httpx.MockTransport` or
            :class:`httpx.ASGITransport`.
        headers: Sent with every request (a service credential, say).
        timeout: Seconds allowed per attempt, connection to last byte; ``5.0`` by default.
        total_timeout: Seconds allowed per call, retries and waits included, when no
            tighter deadline is bound; ``30.0`` by default, ``None`` for no limit.
        attempts: Attempts per retryable call, the first included; ``3`` by default.
        wait_initial: Backoff cap after the first attempt; ``0.1`` s by default.
        wait_max: Backoff cap overall; ``2.0`` s by default. The delay after attempt *n*
            is ``uniform(0, min(wait_max, wait_initial * wait_exp_base ** (n - 1)))``.
        wait_exp_base: Growth of the cap per attempt; ``2.0`` by default.
        failure_threshold: Consecutive failures that open the default breaker; ``5``.
        reset_timeout: Seconds the default breaker stays open; ``30.0`` by default.
        max_concurrent: Calls in flight at once through the default bulkhead; ``32``.
        max_queue: Callers allowed to wait for a bulkhead slot (at most *timeout*
            seconds); ``None`` (the default) for no limit but time.
        breaker: A breaker to use instead; give it ``on=is_downstream_failure``.
        bulkhead: A bulkhead to use instead.
        budget: A retry budget to use instead of ``RetryBudget(name)`` (20 % extra load
            plus 10 retries per second).
        registry: Where metrics live; the default Prometheus registry when ``None``.
        tracer_provider: Where CLIENT spans go; the global provider when ``None``.
        clock: Monotonic seconds, for deadlines, the breaker and the budget.
        sleep: The async sleep between attempts; :func:`asyncio.sleep` by default.
        rng: The source of jitter; a shared :class:`random.Random` when ``None``.

    Raises:
        ValueError: If *timeout* or *total_timeout* is not positive or *attempts* < 1.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        total_timeout: float | None = 30.0,
        attempts: int = 3,
        wait_initial: float = 0.1,
        wait_max: float = 2.0,
        wait_exp_base: float = 2.0,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        max_concurrent: int = 32,
        max_queue: int | None = None,
        breaker: CircuitBreaker | None = None,
        bulkhead: Bulkhead | None = None,
        budget: RetryBudget | None = None,
        registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: RandomSource | None = None,
    ) -> None:
        if not timeout > 0 or (total_timeout is not None and not total_timeout > 0):
            raise ValueError("timeout and total_timeout must be positive seconds")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        transport = transport or PooledTransport(max_connections=max_concurrent)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            trust_env=False,  # calls between services never go through an HTTP_PROXY
            headers=headers,
            timeout=timeout,
        )
        self._prefix = str(self._http.base_url).rstrip("/")
        self._urls: dict[str, httpx.URL] = {}
        breaker = breaker or CircuitBreaker(
            name,
            on=is_downstream_failure,
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            clock=clock,
            registry=registry,
        )
        bulkhead = bulkhead or Bulkhead(
            name,
            max_concurrent=max_concurrent,
            max_queue=max_queue,
            queue_timeout=timeout,
            registry=registry,
        )
        self._runner = CallRunner(
            name=name,
            http=self._http,
            transport=transport,
            breaker=breaker,
            bulkhead=bulkhead,
            budget=budget or RetryBudget(name, clock=clock, registry=registry),
            metrics=http_client_metrics(registry),
            tracer=ClientTracer(tracer_provider),
            attempt_timeout=timeout,
            total_timeout=total_timeout,
            attempts=attempts,
            backoff=(wait_initial, wait_max, wait_exp_base),
            clock=clock,
            sleep=sleep,
            rng=rng,
        )

    @property
    def name(self) -> str:
        """The downstream's name."""
        return self._runner.name

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker in front of the downstream."""
        return self._runner.breaker

    @property
    def bulkhead(self) -> Bulkhead:
        """The bulkhead bounding the calls in flight to the downstream."""
        return self._runner.bulkhead

    @property
    def budget(self) -> RetryBudget:
        """The retry budget shared by the calls of this client."""
        return self._runner.budget

    @property
    def base_url(self) -> httpx.URL:
        """The downstream's base URL."""
        return self._http.base_url

    async def get(self, url: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send a ``GET`` (retried); the arguments are those of :meth:`request`."""
        return await self.request("GET", url, **options)

    async def post(self, url: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send a ``POST``, retried only with an *idempotency_key*; see :meth:`request`."""
        return await self.request("POST", url, **options)

    async def put(self, url: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send a ``PUT`` (retried); the arguments are those of :meth:`request`."""
        return await self.request("PUT", url, **options)

    async def delete(self, url: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send a ``DELETE`` (retried); the arguments are those of :meth:`request`."""
        return await self.request("DELETE", url, **options)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int | float | bool] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        route: str | None = None,
        deadline: Deadline | None = None,
        attempt_timeout: float | None = None,
        raise_for_status: bool = True,
    ) -> httpx.Response:
        """Send a request to the downstream and return its (fully read) response.

        Args:
            method: The HTTP method; retried when in :data:`IDEMPOTENT_METHODS` or when the
                request has an ``Idempotency-Key``.
            url: A path relative to the base URL, such as ``/inventory/SKU-1``.
            params: Query parameters.
            headers: Request headers; an ``X-Correlation-ID`` given here wins over the bound one.
            content: A raw body.
            json: A body to send as JSON.
            idempotency_key: Sent as ``Idempotency-Key``, which makes the request retryable.
            route: The URL template (``/inventory/{sku}``) for metric labels and span names;
                left empty when ``None`` (never the raw path: its cardinality is unbounded).
            deadline: The call's deadline; :func:`~stockflow_kit.resilience.current_deadline`
                when ``None``. *total_timeout* still applies if it is tighter.
            attempt_timeout: This call's per-attempt timeout instead of the client's.
            raise_for_status: ``True`` (the default) raises :class:`DownstreamStatusError`
                for a final 4xx or 5xx; ``False`` returns that response instead.

        Returns:
            The response: 2xx or 3xx (redirects are not followed), or any status with
            ``raise_for_status=False``.

        Raises:
            DownstreamError: One of the tree in the module docstring.
        """
        merged = httpx.Headers(self._http.headers)
        if headers:
            merged.update(headers)
        request = httpx.Request(
            method.upper(),
            self._url(url),
            params=params,  # as httpx's own build_request passes them
            headers=merged,
            content=content,
            json=json,
        )
        if idempotency_key is not None:
            request.headers[IDEMPOTENCY_KEY_HEADER] = idempotency_key
        if CORRELATION_HEADER not in request.headers:
            request.headers[CORRELATION_HEADER] = get_correlation_id() or new_correlation_id()
        return await self._runner.run(
            request,
            route=route,
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            raise_for_status=raise_for_status,
        )

    def _url(self, url: str) -> httpx.URL:
        # Parsing a URL is most of what building a request costs (httpx parses, checks the
        # host, quotes): the same path is parsed once (a few thousand kept).
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _PARSED_URLS:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(self._joined(url))
        return parsed

    def _joined(self, url: str) -> str:
        """*url* under the base URL, as httpx merges them (an absolute URL as it is)."""
        if "://" in url:
            return url
        return f"{self._prefix}/{url.lstrip('/')}"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, traceback)
