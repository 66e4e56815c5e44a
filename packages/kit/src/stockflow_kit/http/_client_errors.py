"""The exceptions of :class:`~stockflow_kit.http.client.ResilientClient`, and the mapping to them.

The tree is drawn in :mod:`stockflow_kit.http.client`. Everything httpx (or the resilience
toolkit) raises during a call is translated here, once, with the original chained as
``__cause__``; nothing else in the client inspects third-party exceptions.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

import httpx

from stockflow_kit.resilience import BulkheadFullError, CircuitOpenError

__all__ = [
    "DownstreamClientError",
    "DownstreamError",
    "DownstreamServerError",
    "DownstreamStatusError",
    "DownstreamTimeoutError",
    "DownstreamTransportError",
    "DownstreamUnavailableError",
    "UnavailableReason",
    "is_downstream_failure",
    "parse_retry_after",
]

UnavailableReason: TypeAlias = Literal["connect_error", "circuit_open", "bulkhead_full"]
"""Why a downstream was not reached: refused/DNS/TLS, our breaker, or our bulkhead."""

_PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
_MAX_PROBLEM_BYTES: Final = 65_536


class DownstreamError(Exception):
    """A call to a downstream service failed; the base of every client error.

    Attributes:
        downstream: The client's name for the downstream, such as ``"inventory"``.
        method: The HTTP method of the call.
        path: The URL path that was called (never the query string, which may hold secrets).
    """

    def __init__(self, message: str, *, downstream: str, method: str, path: str) -> None:
        super().__init__(message)
        self.downstream = downstream
        self.method = method
        self.path = path


class DownstreamUnavailableError(DownstreamError):
    """The downstream was not reached, and failing fast is the right answer.

    Attributes:
        reason: ``"connect_error"`` (connection refused, DNS, TLS), ``"circuit_open"`` (our
            breaker refused the call) or ``"bulkhead_full"`` (our bulkhead turned it away).
        retry_after: Seconds until the breaker admits a trial call, when it is open;
            ``None`` otherwise.
    """

    def __init__(
        self,
        message: str,
        *,
        downstream: str,
        method: str,
        path: str,
        reason: UnavailableReason,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, downstream=downstream, method=method, path=path)
        self.reason: UnavailableReason = reason
        self.retry_after = retry_after


class DownstreamTimeoutError(DownstreamError):
    """An attempt timed out, or the overall deadline passed before the call could finish."""


class DownstreamTransportError(DownstreamError):
    """The connection failed mid-exchange: reset, closed early, or a malformed response."""


class DownstreamStatusError(DownstreamError):
    """The downstream answered with an error status (4xx or 5xx).

    Attributes:
        status: The HTTP status code.
        response: The :class:`httpx.Response`, body already read.
        problem: The parsed body when it is ``application/problem+json`` (RFC 9457) and a
            JSON object; ``None`` otherwise.
        retry_after: The ``Retry-After`` header in seconds (never negative), if present and
            valid; ``None`` otherwise.
    """

    def __init__(
        self, message: str, *, downstream: str, method: str, path: str, response: httpx.Response
    ) -> None:
        super().__init__(message, downstream=downstream, method=method, path=path)
        self.response = response
        self.status = response.status_code
        self.problem = _problem_of(response)
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))


class DownstreamClientError(DownstreamStatusError):
    """The downstream answered 4xx: the request was wrong (429: too many of them)."""


class DownstreamServerError(DownstreamStatusError):
    """The downstream answered 5xx: it failed to handle a request it accepted."""


def is_downstream_failure(exc: Exception) -> bool:
    """Tell whether *exc* says the downstream is unhealthy; the default breaker's ``on=``.

    Failures are 5xx and 429 answers, timeouts, connection errors and broken exchanges.
    Other 4xx answers are *not*: the downstream answered, and answered correctly. A refusal
    by our own breaker or bulkhead is not either (it never reached the downstream). Pass
    this as ``on=`` to a :class:`~stockflow_kit.resilience.CircuitBreaker` you inject.
    """
    if isinstance(exc, DownstreamStatusError):
        return exc.status >= 500 or exc.status == 429
    if isinstance(exc, DownstreamUnavailableError):
        return exc.reason == "connect_error"
    return isinstance(exc, DownstreamTimeoutError | DownstreamTransportError)


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Return a ``Retry-After`` header value in seconds, or ``None`` if absent or invalid.

    Both forms of RFC 9110 are read: delta-seconds (``"120"``) and an HTTP-date, which is
    counted from *now* (the current UTC time by default). A date in the past gives ``0.0``.
    """
    if value is None or not (text := value.strip()):
        return None
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=dt.UTC)
    seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def status_error(
    response: httpx.Response, *, downstream: str, method: str, path: str
) -> DownstreamStatusError:
    """Return the exception for an error *response* (status 400 and above)."""
    kind = DownstreamServerError if response.status_code >= 500 else DownstreamClientError
    message = f"{downstream!r} answered {response.status_code} to {method} {path}"
    return kind(message, downstream=downstream, method=method, path=path, response=response)


def transport_error(exc: Exception, *, downstream: str, method: str, path: str) -> DownstreamError:
    """Return the exception for *exc*, raised while exchanging a request; raise it ``from exc``.

    ``httpx.TimeoutException`` and :class:`TimeoutError` become
    :class:`DownstreamTimeoutError`; ``httpx.ConnectError``
    :class:`DownstreamUnavailableError`; :class:`CircuitOpenError` and
    :class:`BulkheadFullError` :class:`DownstreamUnavailableError` too; any other
    ``httpx.TransportError`` :class:`DownstreamTransportError`.

    Raises:
        TypeError: If *exc* is none of those (a bug to let through, not to map).
    """
    call = f"{method} {path} to {downstream!r}"
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return DownstreamTimeoutError(
            f"{call} timed out", downstream=downstream, method=method, path=path
        )
    reason: UnavailableReason
    retry_after: float | None = None
    if isinstance(exc, httpx.ConnectError):
        reason, why = "connect_error", "could not connect"
    elif isinstance(exc, CircuitOpenError):
        reason, why, retry_after = "circuit_open", "refused: circuit open", exc.retry_after
    elif isinstance(exc, BulkheadFullError):
        reason, why = "bulkhead_full", "refused: too many calls in flight"
    elif isinstance(exc, httpx.TransportError):
        return DownstreamTransportError(
            f"{call} failed: {type(exc).__name__}", downstream=downstream, method=method, path=path
        )
    else:
        raise TypeError(f"not a transport error: {exc!r}") from exc
    return DownstreamUnavailableError(
        f"{call} {why}",
        downstream=downstream,
        method=method,
        path=path,
        reason=reason,
        retry_after=retry_after,
    )


def _problem_of(response: httpx.Response) -> Mapping[str, Any] | None:
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type != _PROBLEM_MEDIA_TYPE or len(response.content) > _MAX_PROBLEM_BYTES:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        return None
    return body if isinstance(body, dict) else None
