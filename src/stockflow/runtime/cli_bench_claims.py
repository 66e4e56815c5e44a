"""``stockflow bench claims``: the seed article's three measured claims, reproduced in one run.

Registered on the bench group by :mod:`stockflow.runtime.cli`; imports its machinery when it
runs, so ``stockflow --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stockflow.runtime.cli_bench import (
    DEFAULT_NATS_URL,
    DEFAULT_POSTGRES_URL,
    JsonFileOption,
    NatsUrlOption,
    PostgresUrlOption,
)

__all__ = ["bench_claims_command"]


def bench_claims_command(
    quick: Annotated[
        bool,
        typer.Option("--quick", help="3 s windows, 5,000 events per backend (under 5 min in all)."),
    ] = False,
    plots: Annotated[
        Path, typer.Option("--plots", help="Where the PNG plots and claims.md go.")
    ] = Path("bench-claims"),
    report: Annotated[
        Path | None,
        typer.Option("--report", help="The markdown report (default: <plots>/claims.md)."),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration", min=0.5, help="Seconds per measured window (default 15, quick 3)."
        ),
    ] = None,
    events: Annotated[
        int | None,
        typer.Option(
            "--events",
            min=100,
            help="Claim 3's events per backend (default 100,000, quick 5,000).",
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1, help="Claim 1's closed-loop senders (each its own user): enough to saturate."
        ),
    ] = 32,
    order_senders: Annotated[
        int,
        typer.Option(
            min=1,
            help="Claim 2's closed-loop senders: fewer, so latency is the path's, not a queue's.",
        ),
    ] = 8,
    slow_ms: Annotated[
        float, typer.Option(min=0.0, help="Claim 2: latency added to the inventory's answers.")
    ] = 50.0,
    outage: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Claim 2: seconds the inventory is stopped (default 5, or a third"
            " of the window when that is less).",
        ),
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend", help="Claim 3's backends (repeatable). Default: embedded and distributed."
        ),
    ] = None,
    postgres_url: PostgresUrlOption = DEFAULT_POSTGRES_URL,
    nats_url: NatsUrlOption = DEFAULT_NATS_URL,
    json_file: JsonFileOption = None,
) -> None:
    """The seed's three claims side by side in one run, with computed verdicts.

    1. consolidation: four fragmented profile services (a bench fixture) against the one
    profiles service, same closed-loop load; throughput and p99 ratios (seed: 2x, -65%).
    2. async critical path: orders answered 202 with the saga on the bus, against a fixture
    that reserves synchronously over HTTP before answering; normal, slowed and stopped
    inventory (seed: -90% user-facing latency). 3. `stockflow bench events` on each backend
    with the eventsourcing library in the same run (seed: >= 12,000 events/s). Every
    experiment ends with its audit; a failed one makes the run FAILED (exit 1).
    """
    import secrets
    import sys

    from stockflow.bench.claims import ClaimsConfig, run_claims
    from stockflow.edge.adapters.tokens import issue_token
    from stockflow_kit.observability import configure_logging

    configure_logging(json=False, level="WARNING", stream=sys.stderr)  # stdout is the table
    backends = tuple(backend or ("embedded", "distributed"))
    if unknown := set(backends) - {"embedded", "distributed"}:
        typer.secho(f"unknown backend(s) {sorted(unknown)}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    secret = secrets.token_urlsafe(32)
    config = ClaimsConfig(
        tokens=lambda user, role: issue_token(secret, user=user, role=role, ttl_seconds=7200),
        jwt_secret=secret,
        quick=quick,
        seconds=duration,
        events=events,
        concurrency=concurrency,
        order_senders=order_senders,
        slow_ms=slow_ms,
        outage=outage,
        backends=backends,
        postgres_url=postgres_url,
        nats_url=nats_url,
    )
    raise typer.Exit(run_claims(config, json_file=json_file, plots=plots, report_file=report))
