"""``stockflow load``: realistic order traffic against a running system, then the audit.

Registered by :mod:`stockflow.runtime.cli`; imports its machinery when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["load_command"]


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: give orders/s as numbers, e.g. 50 or 100,200,400"
        ) from None
    if not rates or any(rate <= 0 for rate in rates):
        raise typer.BadParameter(f"{text!r}: every rate must be > 0, e.g. 50 or 100,200,400")
    return rates


def load_command(
    url: Annotated[
        str, typer.Option(envvar="STOCKFLOW_EDGE_URL", help="Edge, the system's public entry.")
    ] = "http://127.0.0.1:8000",
    rate: Annotated[
        str,
        typer.Option(
            help="Orders/s offered (open loop). A comma-separated list runs one step per rate,"
            " e.g. 100,200,400, and reports the highest that met the target."
        ),
    ] = "50",
    duration: Annotated[float, typer.Option(min=0.5, help="Seconds per step.")] = 30.0,
    customers: Annotated[int, typer.Option(min=1, help="Customers placing orders.")] = 50,
    skus: Annotated[
        int, typer.Option(min=1, help="The load's own SKUs (20% get 80% of the lines).")
    ] = 20,
    initial_stock: Annotated[int, typer.Option(min=1, help="Units received per SKU first.")] = 1000,
    browse_per_order: Annotated[
        float, typer.Option(min=0.0, help="Stock reads (GET /inventory/{sku}) per order.")
    ] = 2.0,
    cancel_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of the confirmed orders cancelled.")
    ] = 0.05,
    replay_fraction: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of placements sent again with the same Idempotency-Key."
        ),
    ] = 0.02,
    max_in_flight: Annotated[
        int,
        typer.Option(
            min=1, help="Requests outstanding at most; one due beyond that is counted skipped."
        ),
    ] = 256,
    settle_timeout: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for the last orders to settle.")
    ] = 30.0,
    seed: Annotated[int, typer.Option(help="Traffic seed.")] = 7,
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar="STOCKFLOW_DATA_DIR",
            help="The deployment's data dir: its JWT secret signs the load's tokens, and the"
            " embedded audit reads its stores.",
        ),
    ] = Path("data"),
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="Audit the databases of `stockflow up --distributed` (next to --database-url).",
        ),
    ] = False,
    database_url: Annotated[
        str, typer.Option(envvar="STOCKFLOW_DATABASE_URL", help="As given to `up --distributed`.")
    ] = "postgresql://postgres@127.0.0.1:5432/stockflow",
    audit: Annotated[
        bool, typer.Option("--audit/--no-audit", help="Run the audit when the traffic is done.")
    ] = True,
    compare_bare: Annotated[
        bool,
        typer.Option(
            "--compare-bare/--no-compare-bare",
            help="Also drive a trivial FastAPI endpoint on the same server stack with the same"
            " client for 5 s (the in-run comparison: edge's orders/s as a ratio of it).",
        ),
    ] = True,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures here as JSON.")
    ] = None,
) -> None:
    """Realistic order traffic through edge: browse stock, place multi-line orders with
    idempotency keys (some replayed), cancel some, staff receipts; open loop at --rate.

    Prints a progress line per step, then per kind of request the answers and p50/p95/p99,
    accepted orders/s, placement-to-settled p50/p99; then the audit. Exits 1 when the audit
    fails, a request got a 5xx or an order never settled; 2 when the system is not reachable.
    """
    import asyncio

    import msgspec
    from rich.console import Console

    from stockflow.bench.load import LoadConfig, run_load
    from stockflow.bench.load_figures import print_load_figures
    from stockflow.runtime.tokens import dev_tokens

    config = LoadConfig(
        url=url.rstrip("/"),
        rates=_rates(rate),
        duration=duration,
        customers=customers,
        skus=skus,
        initial_stock=initial_stock,
        browse_per_order=browse_per_order,
        cancel_fraction=cancel_fraction,
        replay_fraction=replay_fraction,
        max_in_flight=max_in_flight,
        settle_timeout=settle_timeout,
        seed=seed,
    )
    err = Console(stderr=True)
    try:
        tokens = dev_tokens(data_dir)
        figures = asyncio.run(run_load(config, tokens, err))
        if compare_bare:
            from stockflow.bench.load_bare import measure_bare

            err.print("comparison: a trivial FastAPI endpoint on the same stack, 5 s ...")
            figures.bare = measure_bare()
    except (OSError, RuntimeError) as error:
        typer.echo(
            f"stockflow load: {error}\nIs the system running (`stockflow up`) at {url}, and is"
            f" --data-dir the one it uses ({data_dir})?",
            err=True,
        )
        raise typer.Exit(2) from None
    except Exception as error:  # httpx's connect errors and the like
        typer.echo(
            f"stockflow load: {type(error).__name__}: {error}; is edge up at {url}?", err=True
        )
        raise typer.Exit(2) from None
    print_load_figures(figures)
    if json_file is not None:
        json_file.write_bytes(msgspec.json.format(msgspec.json.encode(figures)))
        err.print(f"wrote {json_file}")
    broken = [
        step.rate
        for step in figures.steps
        if step.server_errors or step.unsettled or step.replay_mismatches
    ]
    audit_ok = _audit(data_dir, distributed, database_url) if audit else True
    if broken:
        typer.echo(
            f"steps {', '.join(f'{r:g}' for r in broken)} got 5xx answers, replay mismatches or"
            " orders that never settled: see the services' logs",
            err=True,
        )
    raise typer.Exit(0 if audit_ok and not broken else 1)


QUIET_SECONDS = 15.0
"""How long the audit may wait for the system to settle: a cancel's release and a late
reservation's compensation travel over the bus after the HTTP answer."""


def _audit(data_dir: Path, distributed: bool, database_url: str) -> bool:
    """Audit until every invariant holds, for up to :data:`QUIET_SECONDS` (the invariants are
    those of a quiet system); print the last report."""
    import time

    from rich.console import Console

    from stockflow.audit import (
        AuditReport,
        AuditSourceError,
        audit_data_dir,
        audit_url,
        render_report,
    )
    from stockflow.runtime.registry import spec_named

    def once() -> AuditReport:
        if distributed:
            return audit_url(
                spec_named("inventory").distributed_store_url(database_url),
                orders_url=spec_named("orders").distributed_store_url(database_url),
            )
        return audit_data_dir(data_dir)

    deadline = time.monotonic() + QUIET_SECONDS
    try:
        report = once()
        while not report.ok and time.monotonic() < deadline:
            typer.echo(
                "audit: not all invariants hold yet; waiting for the system to settle", err=True
            )
            time.sleep(1.0)
            report = once()
    except AuditSourceError as error:
        typer.echo(f"cannot audit: {error}", err=True)
        return False
    render_report(report, Console())
    return report.ok
