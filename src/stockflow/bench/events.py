"""``stockflow bench events``: end-to-end events/s of the inventory worker, then the audit.

1. generate the workload (:mod:`stockflow.bench.workload`) and a fresh backend;
2. start ``stockflow serve inventory`` as a subprocess (``INVENTORY_PUBLISH_EVENTS`` from
   ``relay``) and wait for ``/readyz``;
3. publish every envelope to ``inventory.commands`` in batches, as fast as possible or at
   ``rate`` commands/s (:mod:`stockflow.bench.pacing`), stamping ``occurred_at`` with the
   publish time (the first publish of an id is its command's publish time);
4. poll the store's ``processed`` count (own SQL) until every unique command is processed;
   with ``relay``, then poll the relay's checkpoint until every event is on the bus;
5. SIGTERM the worker, compute the figures, run ``stockflow audit`` (a subprocess: the bench
   and the auditor never import each other): a failed audit makes the run FAILED, events/s 0;
6. optionally: the bare-stack ceiling on the same envelopes (``ceiling``,
   :mod:`stockflow.bench.ceiling`), the conventional design (:mod:`stockflow.bench.conventional`)
   and the eventsourcing library (100 aggregates per save, and 1 per save).

With ``preload`` N, step 1 also writes N events of history through the store's bulk path
(``preloader``, given by the CLI: :mod:`stockflow.runtime.bench_preload`) before the worker
starts; every figure then covers the run's own rows only. While it waits, the bench samples the
worker's commit metric, so the run is also reported per tenth (:mod:`stockflow.bench.growth`;
a PNG of it in ``plots_dir``).

Figures: ``events_per_s`` = committed events / (last event's ``occurred_at`` - first event's),
the commit span; ``events_per_s_wall`` = committed events / (first publish -> last command
seen processed). Their scope is "commands on the bus -> events durable + projection + ack";
relaying the events to the bus is excluded unless ``relay`` (then the relay runs during the
measurement and ``events_per_s_relayed`` = events / (first publish -> all relayed)). Lag =
event ``occurred_at`` - its command's publish time (joined on ``causation_id``); the
projection commits in the same transaction as the events. At an unlimited rate the lag
mostly measures the backlog; give a sustainable ``rate`` for the pipeline's latency.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from stockflow.bench.backends import (
    BenchBackend,
    Preloaded,
    distributed_backend,
    embedded_backend,
)
from stockflow.bench.comparison import compare_conventional, compare_eventsourcing
from stockflow.bench.figures import EventsFigures, compute_figures, print_figures
from stockflow.bench.growth import MetricSample, growth_curve
from stockflow.bench.pacing import publish_commands
from stockflow.bench.waiting import STALL_SECONDS, wait_for_count
from stockflow.bench.worker import READY_TIMEOUT, WorkerProcess
from stockflow.bench.workload import Workload, generate_workload

__all__ = ["EventsBenchConfig", "Preloader", "measure_events", "run_events_bench"]

Preloader = Callable[..., Awaitable[Preloaded]]
"""``(event_store_url, *, events, skus, seed, say) -> Preloaded``: writes the history."""
SAMPLE_SECONDS = 0.5
"""How often the bench scrapes the worker's commit metric while it waits."""
PRELOAD_LOAD_RATE = 50_000
"""Events/s the worker is granted to load a preloaded log before it must be ready."""


@dataclass(frozen=True)
class EventsBenchConfig:
    backend: str = "embedded"
    events: int = 100_000
    skus: int = 1_000
    seed: int = 42
    batch_size: int = 1000
    partitions: int = 16
    compare_eventsourcing: bool = True
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    nats_url: str = "nats://127.0.0.1:4222"
    json_file: Path | None = None
    relay: bool = False
    """Run the worker with ``INVENTORY_PUBLISH_EVENTS=true`` (relay events to the bus)."""
    feeder: str = "process"
    """``INVENTORY_FEEDER`` of the worker: bus consumption in a child process, or inline."""
    rate: float | None = None
    """Commands published per second; ``None``: as fast as possible."""
    traced: bool = False
    """Every command in a trace of its own (``publish_commands``' ``traced``)."""
    random_ids: bool = False
    """UUID4 command ids instead of the time-ordered UUIDv7s real envelopes have."""
    before_audit: Callable[[BenchBackend], Awaitable[None]] | None = None
    """Called between the run and the audit (a seam for tests that break the store)."""
    compare_conventional: bool = True
    """Also run the conventional design (:mod:`stockflow.bench.conventional`)."""
    ceiling: bool = False
    """Also measure the bare stack doing the same work (:mod:`stockflow.bench.ceiling`)."""
    preload: int = 0
    """Events of history written before the worker starts (needs ``preloader``)."""
    preloader: Preloader | None = None
    plots_dir: Path | None = None
    """Where the PNG of the growth curve goes (``None``: no plot)."""

    def to_json(self) -> dict[str, Any]:
        """The settings that shape the figures (not where outputs go, not the callables)."""
        return {
            name: value
            for name, value in vars(self).items()
            if name not in {"json_file", "before_audit", "preloader", "plots_dir"}
        }


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_events_bench(config: EventsBenchConfig, say: Callable[[str], None] = _say) -> int:
    """Run the benchmark; print and write the figures. Returns the exit code (0, or 1)."""
    result = asyncio.run(measure_events(config, say))
    print_figures(result)
    if config.plots_dir is not None and result.growth is not None and result.growth.tenths:
        from stockflow.bench.growth_plot import write_growth_png

        preloaded = f", {result.growth.preloaded_events:,} events preloaded"
        path = write_growth_png(
            result.growth,
            config.plots_dir / f"events-growth-{config.backend}.png",
            title=f"stockflow bench events, {config.backend}: {result.events:,} events"
            f"{preloaded if result.growth.preloaded_events else ''}",
        )
        say(f"wrote {path}")
    if config.json_file is not None:
        config.json_file.write_bytes(msgspec.json.format(msgspec.json.encode(result)))
        say(f"wrote {config.json_file}")
    return 0 if result.audit_ok else 1


async def measure_events(config: EventsBenchConfig, say: Callable[[str], None]) -> EventsFigures:
    """One run on a fresh backend (removed afterwards): its figures, audit included."""
    say(f"generating ~{config.events} events over {config.skus} SKUs (seed {config.seed}) ...")
    workload = generate_workload(
        events=config.events, skus=config.skus, seed=config.seed, random_ids=config.random_ids
    )
    say(f"{len(workload.envelopes)} envelopes, {workload.unique} unique commands")
    if config.backend == "embedded":
        backend = embedded_backend()
    else:
        backend = await distributed_backend(config.postgres_url, config.nats_url)
    try:
        if config.preload:
            if config.preloader is None:
                raise ValueError("preload needs a preloader (the CLI gives it)")
            say(f"preloading {config.preload:,} events through the store's bulk path ...")
            backend.preloaded = await config.preloader(
                backend.event_store_url,
                events=config.preload,
                skus=workload.skus,
                seed=config.seed,
                say=say,
            )
        figures = await _measure(config, backend, workload, say)
        if config.preload:
            figures = msgspec.structs.replace(figures, preload=vars(backend.preloaded).copy())
        if config.ceiling:
            from stockflow.bench.ceiling import measure_ceiling

            ceiling = await measure_ceiling(
                backend, workload.envelopes, batch_size=config.batch_size, say=say
            )
            rate = ceiling["events_per_s"]
            figures = msgspec.structs.replace(
                figures,
                ceiling=ceiling,
                fraction_of_ceiling=round(figures.events_per_s / rate, 3) if rate else None,
            )
        if config.compare_conventional:
            figures = await compare_conventional(backend, workload, figures, say)
        if config.compare_eventsourcing:
            figures = await compare_eventsourcing(backend, workload, figures, say)
        return figures
    finally:
        await backend.cleanup()


async def _measure(
    config: EventsBenchConfig, backend: BenchBackend, workload: Workload, say: Callable[[str], None]
) -> EventsFigures:
    worker = WorkerProcess(
        backend,
        batch_size=config.batch_size,
        partitions=config.partitions,
        relay=config.relay,
        feeder=config.feeder,
        ready_timeout=READY_TIMEOUT + config.preload / PRELOAD_LOAD_RATE,
    )
    starting = time.perf_counter()
    await worker.start()
    started_in = time.perf_counter() - starting
    relayed_at: float | None = None
    samples = [_sample(0, await worker.metrics())]
    try:
        relaying = "relaying events" if config.relay else "not relaying events"
        say(
            f"worker ready in {started_in:.1f} s on port {worker.port} ({relaying},"
            f" feeder {config.feeder}); publishing ..."
        )
        published, first_publish, publish_done_at = await publish_commands(
            backend.bus_url, workload.envelopes, say, rate=config.rate, traced=config.traced
        )
        done_at = await _wait_processed(
            backend, worker, samples, workload.unique, first_publish, say
        )
        if config.relay:
            relayed_at = await _wait_relayed(backend, say)
        metrics = await worker.metrics()
        samples.append(_sample((await backend.counts())[1], metrics))
    finally:
        await worker.stop()
    say("computing figures ...")
    times = await backend.event_times()
    if config.before_audit is not None:
        await config.before_audit(backend)
    say("auditing ...")
    audit_ok = await backend.audit(say)
    figures = compute_figures(
        config=config.to_json(),
        workload=workload,
        published=published,
        first_publish=first_publish,
        done_at=done_at,
        event_times=times,
        metrics=metrics,
        audit_ok=audit_ok,
        relay=config.relay,
        relayed_at=relayed_at,
        rate_target=config.rate,
        publish_done_at=publish_done_at,
    )
    growth = growth_curve([t for t, _ in times], samples, preloaded=backend.preloaded.events)
    return msgspec.structs.replace(figures, growth=growth)


def _sample(events: int, metrics: dict[str, float]) -> MetricSample:
    return MetricSample(
        events=events,
        commit_seconds_sum=metrics.get("inventory_commit_duration_seconds_sum", 0.0),
        commit_count=metrics.get("inventory_commit_duration_seconds_count", 0.0),
    )


async def _wait_processed(
    backend: BenchBackend,
    worker: WorkerProcess,
    samples: list[MetricSample],
    unique: int,
    first_publish: float,
    say: Callable[[str], None],
) -> float:
    """Poll until every unique command is processed; sample the commit metric about every
    ``SAMPLE_SECONDS`` (a scrape costs the worker's event loop a rendering of every metric)."""
    processed, events = 0, 0
    last_sample = time.monotonic()

    async def count() -> int:
        nonlocal processed, events, last_sample
        metrics: dict[str, float] = {}
        if time.monotonic() - last_sample >= SAMPLE_SECONDS:
            last_sample = time.monotonic()
            metrics = await worker.metrics()  # before the count: the sample never runs ahead
        processed, events = await backend.counts()
        if metrics:
            samples.append(_sample(events, metrics))
        return processed

    def report(count: int) -> None:
        rate = events / max(time.time() - first_publish, 1e-9)
        say(f"processed {count}/{unique} commands, {events} events ({rate:,.0f} events/s)")

    done_at = await wait_for_count(
        count,
        unique,
        report=report,
        stalled=lambda count: (
            f"the worker processed nothing for {STALL_SECONDS:.0f} s"
            f" ({count}/{unique} commands); see its log above"
        ),
    )
    say(f"processed {processed}/{unique} commands, {events} events")
    return done_at


async def _wait_relayed(backend: BenchBackend, say: Callable[[str], None]) -> float:
    """Poll the relay's checkpoint until every committed event is on the bus; return when."""
    last_progress, last_position = time.time(), -1
    while True:
        position, newest = await backend.relay_progress()
        now = time.time()
        if position >= newest:
            say(f"relayed every event (position {position})")
            return now
        if position != last_position:
            last_progress, last_position = now, position
        elif now - last_progress > STALL_SECONDS:
            raise RuntimeError(
                f"the relay published nothing for {STALL_SECONDS:.0f} s"
                f" (position {position} of {newest}); see the worker's log above"
            )
        await asyncio.sleep(0.1)
