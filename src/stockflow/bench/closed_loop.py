"""A closed-loop driver for ``stockflow bench claims``: *concurrency* senders, each sending its
next request as soon as the previous answer is in, for *seconds*, over ``bench.raw_http``.

Unlike ``bench.http_load`` (one fixed request) each request is built by a callable, so every
sender can act as another user (its own token) and mix reads and writes. Latency is taken
from send to answer, per request; transport errors and timeouts count as errors with the
time they took, so an outage shows in both the error rate and the tail. A 429 or 503 with
``Retry-After`` makes its sender wait that long, as the kit's client does.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from stockflow.bench.figures import percentile
from stockflow.bench.raw_http import RawHttp, RawResponse

__all__ = ["LoopFigures", "Request", "RequestMaker", "change", "ratio", "run_closed_loop"]

QUANTILES: Final = (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)
TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any = None


RequestMaker = Callable[[int, int], Request]
"""``make(sender, n)``: the *n*-th request of sender number *sender*."""


class LoopFigures(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one closed-loop run measured (milliseconds, requests/s)."""

    requests: int
    seconds: float
    requests_per_s: float
    ok_per_s: float
    """2xx answers per second: the throughput that counts."""
    p50_ms: float
    p99_ms: float
    errors: int
    """Answers outside 2xx, and transport errors."""
    error_rate: float
    outcomes: dict[str, int]
    quantiles_ms: dict[str, float]
    """Latency at the percentiles of :data:`QUANTILES` (the CDF, in the JSON report)."""
    latencies_ms: list[float] = msgspec.field(default_factory=list)
    """Every latency, ascending (for the CDF plots; left out of the JSON report)."""


@dataclass
class _Record:
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)


def _retry_after(response: RawResponse) -> float:
    """The seconds a 429/503 asks the client to wait (``Retry-After``), else 0."""
    if response.status_code not in (429, 503):
        return 0.0
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except ValueError:  # an HTTP date: not what the services send
        return 1.0


async def run_closed_loop(
    url: str,
    make: RequestMaker,
    *,
    concurrency: int,
    seconds: float,
    per_sender: int | None = None,
    request_timeout: float = 15.0,
    observe: Callable[[Request, RawResponse], None] | None = None,
) -> LoopFigures:
    """Drive the server at *url* with *concurrency* closed-loop senders for *seconds* (or
    until each sent *per_sender* requests); *observe* sees every answer.

    A sender answered 429 or 503 with ``Retry-After`` waits that long before its next
    request, as a well-behaved client (and the kit's) does, so a fast-failing outage counts
    the placements users tried, not a storm of instant retries."""
    record = _Record()
    async with RawHttp(url, max_connections=concurrency, timeout=request_timeout) as http:
        started = time.perf_counter()
        until = started + seconds

        async def sender(number: int) -> None:
            n = 0
            while (sent := time.perf_counter()) < until or per_sender is not None:
                if per_sender is not None and n >= per_sender:
                    return
                request = make(number, n)
                n += 1
                try:
                    response = await http.request(
                        request.method,
                        request.path,
                        json_body=request.body,
                        headers=request.headers,
                    )
                    outcome = str(response.status_code)
                    if observe is not None:
                        observe(request, response)
                except TRANSPORT_ERRORS as error:
                    outcome, response = type(error).__name__, None
                record.latencies.append((time.perf_counter() - sent) * 1000.0)
                record.outcomes[outcome] += 1
                if response is not None and (wait := _retry_after(response)):
                    await asyncio.sleep(min(wait, max(0.0, until - time.perf_counter())))

        await asyncio.gather(*(sender(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(record.latencies)
    ok = sum(n for outcome, n in record.outcomes.items() if outcome.startswith("2"))
    errors = len(ordered) - ok
    return LoopFigures(
        requests=len(ordered),
        seconds=round(elapsed, 2),
        requests_per_s=round(len(ordered) / elapsed, 1),
        ok_per_s=round(ok / elapsed, 1),
        p50_ms=round(percentile(ordered, 50), 2),
        p99_ms=round(percentile(ordered, 99), 2),
        errors=errors,
        error_rate=round(errors / len(ordered), 4) if ordered else 0.0,
        outcomes=dict(record.outcomes),
        quantiles_ms={f"p{q:g}": round(percentile(ordered, q), 2) for q in QUANTILES},
        latencies_ms=ordered,
    )


def ratio(a: float, b: float) -> float:
    """``a / b`` (0 when *b* is 0), to three places."""
    return round(a / b, 3) if b else 0.0


def change(new: float, old: float) -> float:
    """*new* relative to *old*: -0.65 is 65% lower (0 when *old* is 0)."""
    return round(new / old - 1.0, 3) if old else 0.0
