"""Load generators: a few asyncio clients in a thread of their own, each sample recorded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Sample:
    """One request of a load: when it started, how long it took and what came back."""

    started: float
    seconds: float
    status: int
    """The HTTP status; 0 when no answer came (the error says why)."""
    retry_after: str | None = None
    body: Any = None
    error: str = ""


Call = Callable[[httpx.AsyncClient, int], Awaitable[Sample]]
"""One request of worker *n*; the load calls it again and again until stopped."""


async def timed(request: Awaitable[httpx.Response]) -> Sample:
    """Send *request* and record it as a :class:`Sample` (a JSON body is kept)."""
    started = time.monotonic()
    try:
        response = await request
    except httpx.HTTPError as error:
        return Sample(started, time.monotonic() - started, 0, error=type(error).__name__)
    seconds = time.monotonic() - started
    body: Any = None
    if response.headers.get("content-type", "").endswith("json"):
        body = response.json()
    return Sample(started, seconds, response.status_code, response.headers.get("retry-after"), body)


@dataclass
class Load:
    """*workers* clients calling *call* in a loop, *pause* seconds apart, in a daemon thread.

    Each client has its own connection pool (*timeout* seconds per request), so a request
    that hangs holds up only its own client, as with real users.
    """

    name: str
    call: Call
    workers: int = 4
    pause: float = 0.0
    timeout: float = 30.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)
        self._thread.start()

    def stop(self, within: float = 60.0) -> list[Sample]:
        """Stop the clients (each finishes its request) and return every sample."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(within)
            if self._thread.is_alive():
                raise AssertionError(f"load {self.name} did not stop within {within} s")
        return self.samples

    async def _run(self) -> None:
        await asyncio.gather(*(self._worker(index) for index in range(self.workers)))

    async def _worker(self, index: int) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as http:
            while not self._stop.is_set():
                self.samples.append(await self.call(http, index))
                if self.pause:
                    await asyncio.sleep(self.pause)


def summary(samples: list[Sample], *, deadline: float | None = None) -> dict[str, Any]:
    """Counts by status, 5xx (all, and those other than a 503 with Retry-After), latencies."""
    statuses: dict[str, int] = {}
    for sample in samples:
        key = str(sample.status) if sample.status else f"no answer ({sample.error})"
        statuses[key] = statuses.get(key, 0) + 1
    server_errors = [s for s in samples if s.status >= 500]
    seconds = sorted(s.seconds for s in samples) or [0.0]
    report: dict[str, Any] = {
        "requests": len(samples),
        "statuses": statuses,
        "five_xx": len(server_errors),
        "five_xx_not_503_retry_after": sum(
            1 for s in server_errors if s.status != 503 or not s.retry_after
        ),
        "no_answer": sum(1 for s in samples if not s.status),
        "p50_seconds": round(seconds[len(seconds) // 2], 3),
        "p99_seconds": round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))], 3),
        "max_seconds": round(seconds[-1], 3),
    }
    if deadline is not None:
        report["past_deadline"] = sum(1 for s in samples if s.seconds > deadline)
    return report
