"""``stockflow bench orders``: orders placed and settled end to end, with the in-run comparison.

Registered on the bench group by :mod:`stockflow.runtime.cli`; imports its machinery when it
runs, so ``stockflow --help`` stays instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from stockflow.runtime.cli_bench import (
    DEFAULT_NATS_URL,
    DEFAULT_POSTGRES_URL,
    BackendOption,
    JsonFileOption,
    NatsUrlOption,
    PostgresUrlOption,
    check_backend,
)

__all__ = ["bench_orders_command"]


def bench_orders_command(
    backend: BackendOption = "embedded",
    orders: Annotated[int, typer.Option(min=1, help="Orders placed.")] = 2000,
    skus: Annotated[
        int, typer.Option(min=1, help="Distinct SKUs (20% of them get 80% of the lines).")
    ] = 50,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Closed-loop HTTP senders placing orders at once.")
    ] = 32,
    stock_factor: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Stock received per SKU as a multiple of its expected demand; below about"
            " 1.5 some orders are rejected (the demand scatters around its expectation).",
        ),
    ] = 1.2,
    seed: Annotated[int, typer.Option(help="Order-mix seed (same seed, same orders).")] = 42,
    compare_inventory: Annotated[
        bool,
        typer.Option(
            "--compare-inventory/--no-compare-inventory",
            help="Also measure the inventory alone reserving the same mix from ReserveStock"
            " commands on the bus (a second phase on a fresh backend).",
        ),
    ] = True,
    inventory_rate: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            help="ReserveStock commands/s in that phase. Default: as fast as the bus takes"
            " them (its rate is then the inventory's capacity, its latency mostly backlog).",
        ),
    ] = None,
    postgres_url: PostgresUrlOption = DEFAULT_POSTGRES_URL,
    nats_url: NatsUrlOption = DEFAULT_NATS_URL,
    json_file: JsonFileOption = None,
) -> None:
    """Orders placed and settled end to end (orders -> bus -> inventory -> bus -> orders).

    Runs `stockflow serve inventory` and `stockflow serve orders` as subprocesses, places the
    orders over HTTP, takes each settlement from the bus, and reports orders/s accepted and
    settled and the placement-to-settled latency; then the audit. A run whose audit fails is
    reported FAILED (every rate 0) and exits 1.
    """
    check_backend(backend)
    from stockflow.bench.orders import OrdersBenchConfig, run_orders_bench

    config = OrdersBenchConfig(
        backend=backend,
        orders=orders,
        skus=skus,
        concurrency=concurrency,
        stock_factor=stock_factor,
        seed=seed,
        compare_inventory=compare_inventory,
        inventory_rate=inventory_rate,
        postgres_url=postgres_url,
        nats_url=nats_url,
        json_file=json_file,
    )
    raise typer.Exit(run_orders_bench(config))
