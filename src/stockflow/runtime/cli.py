"""The ``stockflow`` command line.

Commands import what they need when they run, so ``stockflow --help`` is instant and nothing
happens at import time.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="stockflow",
    help="stockflow: an event-sourced retail inventory system and its resilience toolkit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that print measured figures (never asserted by tests).")
app.add_typer(bench_app, name="bench")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def _echo_err(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)


@bench_app.command("bus")
def bench_bus(
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            "-b",
            help="memory, embedded (SqliteLogBus) or distributed (JetStream); repeatable. Default: all three.",
        ),
    ] = None,
    messages: Annotated[int, typer.Option(help="Messages per measurement.", min=100)] = 20_000,
    batch_size: Annotated[
        list[int] | None, typer.Option("--batch-size", help="Repeatable. Default: 1, 100, 1000.")
    ] = None,
    nats_url: Annotated[
        str, typer.Option(envvar="STOCKFLOW_NATS_URL", help="JetStream for 'distributed'.")
    ] = DEFAULT_NATS_URL,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write results here.")
    ] = None,
) -> None:
    """Publish and consume-and-ack messages/s per bus backend and batch size."""
    from stockflow.bench.bus import format_bus_table, run_bus_bench

    chosen = backend or ["memory", "embedded", "distributed"]
    unknown = set(chosen) - {"memory", "embedded", "distributed"}
    if unknown:
        _echo_err(f"unknown backend(s) {sorted(unknown)}: use memory, embedded or distributed")
        raise typer.Exit(2)
    with tempfile.TemporaryDirectory(prefix="stockflow-bench-") as tmp:
        urls = {
            "memory": "memory://",
            "embedded": f"sqlite:///{tmp}/bus.sqlite3",
            "distributed": nats_url,
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


def main() -> None:
    """Entry point of the ``stockflow`` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main"]
