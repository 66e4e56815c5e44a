"""``stockflow bench events``: end-to-end events/s of the inventory worker, then the audit.

1. generate the workload (:mod:`stockflow.bench.workload`) and a fresh backend;
2. start ``stockflow serve inventory`` as a subprocess and wait for ``/readyz``;
3. publish every envelope to ``inventory.commands`` in batches, stamping ``occurred_at`` with
   the publish time (the first publish of an id is its command's publish time);
4. poll the store's ``processed`` count (own SQL) until every unique command is processed;
5. SIGTERM the worker, compute the figures, run ``stockflow audit`` (a subprocess: the bench
   and the auditor never import each other): a failed audit makes the run FAILED, events/s 0;
6. optionally run the same envelopes through the eventsourcing library.

Figures: ``events_per_s`` = committed events / (last event's ``occurred_at`` - first event's),
the commit span; ``events_per_s_wall`` = committed events / (first publish -> last command
seen processed). Lag = event ``occurred_at`` - its command's publish time (joined on
``causation_id``); the projection commits in the same transaction as the events.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from stockflow.bench.backends import BenchBackend, distributed_backend, embedded_backend
from stockflow.bench.figures import EventsFigures, compute_figures, print_figures
from stockflow.bench.worker import WorkerProcess
from stockflow.bench.workload import Workload, generate_workload
from stockflow.contracts.inventory_commands import COMMANDS_TOPIC
from stockflow_kit.messaging import Envelope, make_bus

__all__ = ["EventsBenchConfig", "run_events_bench"]

PUBLISH_BATCH: Final = 1000
STALL_SECONDS: Final = 60.0
ES_TIME_CAP: Final = 60.0


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


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_events_bench(config: EventsBenchConfig, say: Callable[[str], None] = _say) -> int:
    """Run the benchmark; print and write the figures. Returns the exit code (0, or 1)."""
    result = asyncio.run(_run(config, say))
    print_figures(result)
    if config.json_file is not None:
        config.json_file.write_bytes(msgspec.json.format(msgspec.json.encode(result)))
        say(f"wrote {config.json_file}")
    return 0 if result.audit_ok else 1


async def _run(config: EventsBenchConfig, say: Callable[[str], None]) -> EventsFigures:
    say(f"generating ~{config.events} events over {config.skus} SKUs (seed {config.seed}) ...")
    workload = generate_workload(events=config.events, skus=config.skus, seed=config.seed)
    say(f"{len(workload.envelopes)} envelopes, {workload.unique} unique commands")
    if config.backend == "embedded":
        backend = embedded_backend()
    else:
        backend = await distributed_backend(config.postgres_url, config.nats_url)
    try:
        figures = await _measure(config, backend, workload, say)
        if config.compare_eventsourcing:
            figures = await _compare(config, backend, workload, figures, say)
        return figures
    finally:
        await backend.cleanup()


async def _measure(
    config: EventsBenchConfig, backend: BenchBackend, workload: Workload, say: Callable[[str], None]
) -> EventsFigures:
    worker = WorkerProcess(backend, batch_size=config.batch_size, partitions=config.partitions)
    await worker.start()
    try:
        say(f"worker ready on port {worker.port}; publishing ...")
        published, first_publish = await _publish(backend.bus_url, workload, say)
        done_at = await _wait_processed(backend, workload.unique, first_publish, say)
        metrics = await worker.metrics()
    finally:
        await worker.stop()
    say("computing figures ...")
    times = await backend.event_times()
    say("auditing ...")
    audit_ok = await _audit(backend, say)
    return compute_figures(
        config=vars(config) | {"json_file": None},
        workload=workload,
        published=published,
        first_publish=first_publish,
        done_at=done_at,
        event_times=times,
        metrics=metrics,
        audit_ok=audit_ok,
    )


async def _audit(backend: BenchBackend, say: Callable[[str], None]) -> bool:
    """``stockflow audit`` on the store, as its own process (the bench must not import it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from stockflow.runtime.cli import main; main()",
        "audit",
        "--event-store-url",
        backend.event_store_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    say(output.decode(errors="replace").rstrip())
    return process.returncode == 0


async def _publish(
    bus_url: str, workload: Workload, say: Callable[[str], None]
) -> tuple[dict[str, float], float]:
    bus = make_bus(bus_url, name="bench")
    await bus.start()
    published: dict[str, float] = {}
    envelopes = workload.envelopes
    started = time.time()
    try:
        for start in range(0, len(envelopes), PUBLISH_BATCH):
            now = datetime.now(UTC)
            stamp = now.timestamp()
            batch: list[Envelope] = []
            for envelope in envelopes[start : start + PUBLISH_BATCH]:
                published.setdefault(envelope.id, stamp)
                batch.append(msgspec.structs.replace(envelope, occurred_at=now))
            await bus.publish(COMMANDS_TOPIC, batch)
            if (start // PUBLISH_BATCH) % 20 == 19:
                rate = (start + len(batch)) / (time.time() - started)
                say(f"published {start + len(batch)}/{len(envelopes)} ({rate:,.0f}/s)")
    finally:
        await bus.close()
    say(f"published {len(envelopes)} envelopes in {time.time() - started:.1f} s")
    return published, started


async def _wait_processed(
    backend: BenchBackend, unique: int, first_publish: float, say: Callable[[str], None]
) -> float:
    last_progress, last_count, last_report = time.time(), -1, 0.0
    while True:
        processed, events = await backend.counts()
        now = time.time()
        if processed >= unique:
            say(f"processed {processed}/{unique} commands, {events} events")
            return now
        if processed != last_count:
            last_progress, last_count = now, processed
        elif now - last_progress > STALL_SECONDS:
            raise RuntimeError(
                f"the worker processed nothing for {STALL_SECONDS:.0f} s"
                f" ({processed}/{unique} commands); see its log above"
            )
        if now - last_report >= 1.0:
            rate = events / max(now - first_publish, 1e-9)
            say(f"processed {processed}/{unique} commands, {events} events ({rate:,.0f} events/s)")
            last_report = now
        await asyncio.sleep(0.2)


async def _compare(
    config: EventsBenchConfig,
    backend: BenchBackend,
    workload: Workload,
    figures: EventsFigures,
    say: Callable[[str], None],
) -> EventsFigures:
    from stockflow.bench.eventsourcing_app import run_eventsourcing

    env: dict[str, Any]
    if backend.name == "embedded":
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(backend.workdir / "eventsourcing.sqlite3"),
        }
    else:
        from urllib.parse import urlsplit

        parts = urlsplit(backend.admin_url)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": await backend.new_database("stockflow_bench_es"),
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": parts.username or "postgres",
            "POSTGRES_PASSWORD": parts.password or "",
        }
    say(f"eventsourcing ({env['PERSISTENCE_MODULE']}), 100 aggregates per save ...")
    result = await asyncio.to_thread(
        run_eventsourcing,
        workload.envelopes,
        env,
        save_batch=100,
        time_cap=ES_TIME_CAP,
        progress=say,
    )
    matches = not result.capped and result.stock == workload.model.stock()
    return msgspec.structs.replace(
        figures,
        eventsourcing={
            "persistence": env["PERSISTENCE_MODULE"],
            "save_batch": result.save_batch,
            "events": result.events,
            "commands": result.commands,
            "seconds": round(result.seconds, 3),
            "events_per_s": round(result.events_per_s, 1),
            "capped_at_seconds": ES_TIME_CAP if result.capped else None,
            "final_stock_matches_reference": matches,
        },
        ratio_vs_eventsourcing=(
            round(figures.events_per_s / result.events_per_s, 2) if result.events_per_s else None
        ),
    )
