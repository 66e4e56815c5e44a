"""Publishing commands to the inventory (``bench events``, and ``bench orders``' inventory-alone
phase), as fast as possible or at a fixed rate (``--rate``): a token bucket, in batches.

At an unlimited rate the bench publishes the whole workload as fast as the bus takes it, so
the command-to-projection lag mostly measures how long a command waited in the backlog. At a
rate the worker can sustain, the lag is the pipeline's own latency (fetch wait, batch, commit).

The publisher takes :func:`batch_for_rate` envelopes at a time from a :class:`TokenBucket`
whose capacity is one batch: after a stall it catches up by at most one batch, so the rate is
never exceeded for longer than that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Final

import msgspec

from stockflow.contracts.inventory_commands import COMMANDS_TOPIC
from stockflow_kit.messaging import Envelope, make_bus

__all__ = ["PUBLISHES_PER_SECOND", "TokenBucket", "batch_for_rate", "publish_commands"]

PUBLISHES_PER_SECOND: Final = 100
"""About how many publish calls per second a paced run makes."""
PUBLISH_BATCH: Final = 1000
REPORT_SECONDS: Final = 2.0


def batch_for_rate(rate: float, *, most: int) -> int:
    """Envelopes per publish at *rate* envelopes/s: ~1/100 s worth, between 1 and *most*."""
    return max(1, min(most, round(rate / PUBLISHES_PER_SECOND)))


class TokenBucket:
    """Hands out *rate* tokens per second and saves up at most *capacity* of them.

    Args:
        rate: Tokens per second (> 0).
        capacity: The most tokens saved up (>= 1); the bucket starts full.
        clock: Monotonic seconds.
        sleep: Waits; inject a manual clock's in tests.
    """

    def __init__(
        self,
        rate: float,
        capacity: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate > 0 or capacity < 1:
            msg = f"need rate > 0 and capacity >= 1, not {rate!r} and {capacity!r}"
            raise ValueError(msg)
        self.rate, self.capacity = rate, capacity
        self._clock, self._sleep = clock, sleep
        self._tokens = float(capacity)
        self._last = clock()

    async def take(self, count: int) -> None:
        """Wait until *count* tokens (at most ``capacity``) are saved up, then spend them."""
        if not 0 <= count <= self.capacity:
            msg = f"can take 0 to {self.capacity} tokens at a time, not {count}"
            raise ValueError(msg)
        while True:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= count - 1e-9:  # float slack: no extra nanosecond sleeps
                self._tokens = max(0.0, self._tokens - count)
                return
            await self._sleep((count - self._tokens) / self.rate)


def traceparent_of(envelope: Envelope) -> str:
    """A W3C ``traceparent`` of the envelope's own: its id as the trace id (UUIDs are 32 hex
    digits), sampled."""
    trace_id = envelope.id.replace("-", "")
    return f"00-{trace_id}-{trace_id[:16]}-01"


async def publish_commands(
    bus_url: str,
    envelopes: Sequence[Envelope],
    say: Callable[[str], None],
    *,
    rate: float | None = None,
    traced: bool = False,
) -> tuple[dict[str, float], float, float]:
    """Publish *envelopes* to ``inventory.commands`` in batches, at *rate* envelopes/s or as
    fast as the bus takes them, each stamped with its publish time as ``occurred_at``.

    *traced*: each envelope carries a ``traceparent`` of its own (as if every command came
    from a traced request of its own: the worst case for the event log and the relay, which
    then store and publish one trace context per event).

    Returns the first publish time of each id, and when publishing began and ended.
    """
    batch_size = PUBLISH_BATCH if rate is None else batch_for_rate(rate, most=PUBLISH_BATCH)
    bucket = None if rate is None else TokenBucket(rate, batch_size)
    bus = make_bus(bus_url, name="bench")
    await bus.start()
    published: dict[str, float] = {}
    started = last_report = time.time()
    try:
        for start in range(0, len(envelopes), batch_size):
            chunk = envelopes[start : start + batch_size]
            if bucket is not None:
                await bucket.take(len(chunk))
            now = datetime.now(UTC)
            stamp = now.timestamp()
            batch: list[Envelope] = []
            for envelope in chunk:
                published.setdefault(envelope.id, stamp)
                batch.append(msgspec.structs.replace(envelope, occurred_at=now))
            causes = [traceparent_of(e) for e in batch] if traced else None
            await bus.publish(COMMANDS_TOPIC, batch, causes=causes)
            if stamp - last_report >= REPORT_SECONDS:
                last_report = stamp
                rate_now = (start + len(batch)) / (time.time() - started)
                say(f"published {start + len(batch)}/{len(envelopes)} ({rate_now:,.0f}/s)")
    finally:
        await bus.close()
    finished = time.time()
    say(f"published {len(envelopes)} envelopes in {finished - started:.1f} s")
    return published, started, finished
