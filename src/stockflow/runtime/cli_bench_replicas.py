"""``stockflow bench replicas``: inventory members with leases, 1 against 2, and the rebalance
pause (ADR 0010). Registered on the bench group by :mod:`stockflow.runtime.cli`; imports its
machinery when it runs, so ``stockflow --help`` stays instant."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from stockflow.runtime.cli_bench import (
    DEFAULT_NATS_URL,
    DEFAULT_POSTGRES_URL,
    JsonFileOption,
    NatsUrlOption,
    PostgresUrlOption,
)

__all__ = ["bench_replicas_command"]


def bench_replicas_command(
    commands: Annotated[
        int, typer.Option("--commands", min=100, help="Commands per throughput phase.")
    ] = 20_000,
    skus: Annotated[int, typer.Option("--skus", min=16, help="SKUs of the workload.")] = 200,
    max_lines: Annotated[
        int,
        typer.Option(
            "--max-lines", min=1, help="Lines per order at most (1: no order spans partitions)."
        ),
    ] = 3,
    static_reference: Annotated[
        bool,
        typer.Option(
            "--static-reference/--no-static-reference",
            help="Also measure the static single replica (the default deployment).",
        ),
    ] = True,
    rebalance: Annotated[
        bool,
        typer.Option("--rebalance/--no-rebalance", help="Also measure the rebalance pause."),
    ] = True,
    postgres_url: PostgresUrlOption = DEFAULT_POSTGRES_URL,
    nats_url: NatsUrlOption = DEFAULT_NATS_URL,
    json_file: JsonFileOption = None,
) -> None:
    """Real inventory processes on PostgreSQL + JetStream: events/s with 1 and 2 members
    (INVENTORY_ASSIGNMENT=leases, same commands, same run), and the pause of each partition
    moved when a second member joins a loaded one."""
    from stockflow.runtime.bench_replicas import run_replicas_bench

    figures = asyncio.run(
        run_replicas_bench(
            postgres_url=postgres_url,
            nats_url=nats_url,
            commands=commands,
            skus=skus,
            static_reference=static_reference,
            max_lines=max_lines,
            rebalance=rebalance,
            echo=typer.echo,
        )
    )
    one, two = figures.throughput.get("leases-1"), figures.throughput.get("leases-2")
    if one and two:
        typer.echo(f"2 members / 1 member: {two / one:.2f}x")
    if json_file is not None:
        import msgspec

        json_file.write_bytes(msgspec.json.format(msgspec.json.encode(figures.as_dict())))
        typer.echo(f"wrote {json_file}", err=True)
