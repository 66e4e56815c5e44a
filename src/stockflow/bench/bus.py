"""``stockflow bench bus``: publish and consume-and-ack throughput of each bus backend.

For every backend URL and batch size, on a fresh topic and durable subscription:

* **publish**: ``messages`` envelopes in ``publish`` calls of ``batch_size`` envelopes each;
* **consume**: ``fetch(batch_size)`` then ``ack`` of each batch until all are consumed.

Envelopes are built before the clock starts; encoding, storage, metrics and spans are
measured. Batch size 1 costs one transaction per message, so its runs are capped at
:data:`SMALL_BATCH_MESSAGES` messages, and each phase stops after :data:`PHASE_BUDGET_SECONDS`
(the result then reports how many messages were measured) to keep the bench within a minute.

On JetStream (``nats://``/``tls://`` URLs) every run uses its own subject and stream prefix
(``benchbus-<random>``) and deletes its streams at the end, also when the run fails, so the
shared server keeps nothing of it. On Kafka (``kafka://``) the run uses the same prefix for
its topics and groups; ``stockflow bench bus`` starts a private Tansu broker (memory
storage) for it by default, which takes them along when it stops. On a broker given with
``--kafka-url`` the ``benchbus-*`` topics stay (delete them with the broker's tools).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec

from stockflow.bench.backends import delete_streams
from stockflow_kit.messaging import ConsumerConfig, Envelope, make_bus

__all__ = [
    "PHASE_BUDGET_SECONDS",
    "SMALL_BATCH_MESSAGES",
    "BusBenchResult",
    "format_bus_table",
    "run_bus_bench",
]

SMALL_BATCH_MESSAGES = 5_000
"""Messages per run for batch sizes below 100."""

PHASE_BUDGET_SECONDS = 8.0
"""A publish or consume phase stops after this long; the rate covers what was done."""


class BusBenchResult(msgspec.Struct, frozen=True, kw_only=True):
    """One measurement: a backend at one batch size.

    Args:
        backend: The name given in ``urls``.
        batch_size: Envelopes per publish call and per fetch.
        messages: Messages published (and consumed) in this run.
        publish_per_s: Messages published per second.
        consume_per_s: Messages fetched and acked per second.
    """

    backend: str
    batch_size: int
    messages: int
    publish_per_s: float
    consume_per_s: float


async def run_bus_bench(
    *,
    urls: Mapping[str, str],
    batch_sizes: Sequence[int] = (1, 100, 1000),
    messages: int = 20_000,
    progress: Callable[[str], None] | None = None,
    stream_prefix: str | None = None,
) -> list[BusBenchResult]:
    """Measure every backend in *urls* (name → bus URL) at every batch size.

    Args:
        urls: Backends to measure, e.g. ``{"memory": "memory://", "embedded": "sqlite:///…"}``.
        batch_sizes: Envelopes per publish call and per fetch.
        messages: Messages per run (capped at :data:`SMALL_BATCH_MESSAGES` below batch 100).
        progress: Called with a short line before and after each run.
        stream_prefix: The JetStream and Kafka prefix of this run (replacing any in the URL);
            ``benchbus-<random>`` when ``None``. Its JetStream streams are deleted at the end.

    Returns:
        One result per backend and batch size, in that order.
    """
    report = progress or (lambda _line: None)
    prefix = stream_prefix or f"benchbus-{uuid.uuid4().hex[:10]}"
    servers: set[str] = set()
    results = []
    try:
        for backend, given in urls.items():
            url = given
            scheme = urlsplit(given).scheme
            if scheme in {"nats", "tls", "kafka"}:
                url = _with_prefix(given, prefix)
            if scheme in {"nats", "tls"}:
                servers.add(given.split("?", 1)[0])
            for batch_size in batch_sizes:
                count = messages if batch_size >= 100 else min(messages, SMALL_BATCH_MESSAGES)
                report(f"{backend}: batch {batch_size}, {count} messages ...")
                result = await _measure(backend, url, batch_size, count)
                report(
                    f"{backend}: batch {batch_size}: publish {result.publish_per_s:,.0f}/s,"
                    f" consume+ack {result.consume_per_s:,.0f}/s"
                )
                results.append(result)
    finally:
        for server in sorted(servers):
            deleted = await delete_streams(server, prefix)
            report(f"deleted {len(deleted)} bench stream(s) with prefix {prefix!r} on {server}")
    return results


def _with_prefix(url: str, prefix: str) -> str:
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query)) | {"prefix": prefix}
    return parts._replace(query=urlencode(options)).geturl()


async def _measure(backend: str, url: str, batch_size: int, count: int) -> BusBenchResult:
    topic = f"bench{uuid.uuid4().hex[:10]}.events"
    envelopes = [
        Envelope.new("BenchMessage", {"n": n, "sku": f"sku-{n % 1000}", "qty": 1},
                     source="bench", subject=f"sku-{n % 1000}", sequence=n)
        for n in range(count)
    ]  # fmt: skip
    bus = make_bus(url)
    await bus.start()
    try:
        published, started = 0, time.perf_counter()
        while published < count and time.perf_counter() - started < PHASE_BUDGET_SECONDS:
            await bus.publish(topic, envelopes[published : published + batch_size])
            published += len(envelopes[published : published + batch_size])
        publish_seconds = time.perf_counter() - started

        sub = await bus.subscribe(topic, "bench", ConsumerConfig(ack_wait=60.0))
        consumed, started = 0, time.perf_counter()
        while consumed < published and time.perf_counter() - started < PHASE_BUDGET_SECONDS:
            batch = await sub.fetch(batch_size, max_wait=1.0)
            await sub.ack(batch)
            consumed += len(batch)
        consume_seconds = time.perf_counter() - started
        await sub.close()
    finally:
        await bus.close()
    return BusBenchResult(
        backend=backend,
        batch_size=batch_size,
        messages=published,
        publish_per_s=published / publish_seconds,
        consume_per_s=consumed / consume_seconds,
    )


def format_bus_table(results: Sequence[BusBenchResult]) -> str:
    """Return *results* as a plain, aligned text table (one line per result)."""
    header = ("backend", "batch", "messages", "publish msg/s", "consume+ack msg/s")
    rows = [
        (
            r.backend,
            str(r.batch_size),
            str(r.messages),
            f"{r.publish_per_s:,.0f}",
            f"{r.consume_per_s:,.0f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
