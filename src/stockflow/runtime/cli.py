"""The ``stockflow`` command line.

Commands import what they need when they run, so ``stockflow --help`` is instant and nothing
happens at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from stockflow.runtime.cli_bench import DEFAULT_NATS_URL, bench_app
from stockflow.runtime.cli_bench_claims import bench_claims_command
from stockflow.runtime.cli_bench_orders import bench_orders_command
from stockflow.runtime.cli_bench_replicas import bench_replicas_command
from stockflow.runtime.cli_load import load_command
from stockflow.runtime.cli_trace import trace_command

app = typer.Typer(
    name="stockflow",
    help="stockflow: an event-sourced retail inventory system and its resilience toolkit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app.command("orders")(bench_orders_command)
bench_app.command("claims")(bench_claims_command)
bench_app.command("replicas")(bench_replicas_command)
app.command("load")(load_command)
app.command("trace")(trace_command)
app.add_typer(bench_app, name="bench")


def _echo_err(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)


# ---------------------------------------------------------------- up, serve, inventory
# (the services' runtime; kept in one block so other commands can be added around it)
inventory_app = typer.Typer(help="Inventory maintenance: projection rebuild and checks.")
app.add_typer(inventory_app, name="inventory")


def _services_help() -> str:
    from stockflow.runtime.registry import SERVICES

    return "; ".join(f"{s.name} ({s.summary})" if s.summary else s.name for s in SERVICES)


def _fail_startup(error: Exception) -> NoReturn:
    _echo_err(str(error))
    raise typer.Exit(1)


@app.command("serve")
def serve_command(
    service: Annotated[
        str, typer.Argument(help="The service to run (see the list above).", show_default=False)
    ],
) -> None:
    """Run ONE service in this process (what a container runs), configured by the environment.

    Each service reads <SERVICE>_<FIELD> (INVENTORY_PORT, INVENTORY_EVENT_STORE_URL, …); the
    shared fields also read STOCKFLOW_<FIELD> (STOCKFLOW_LOG_LEVEL, STOCKFLOW_LOG_FORMAT,
    STOCKFLOW_OTLP_ENDPOINT, STOCKFLOW_SERVICE_TOKEN) and the bus URL reads BUS_URL
    (sqlite:///… or nats://host:port). A service credential is required. The service is ready
    when GET /readyz answers 200, and stops gracefully on SIGTERM.
    """
    from stockflow.platform.startup import StartupError
    from stockflow.runtime.registry import spec_named
    from stockflow.runtime.serve import serve

    try:
        spec_named(service)
    except KeyError as error:
        _echo_err(str(error.args[0]))
        raise typer.Exit(2) from None
    try:
        serve(service)
    except StartupError as error:
        _fail_startup(error)


@app.command("up")
def up_command(
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar="STOCKFLOW_DATA_DIR", help="Where the SQLite files live (created if missing)."
        ),
    ] = Path("data"),
    port_base: Annotated[
        int,
        typer.Option(
            envvar="STOCKFLOW_PORT_BASE",
            min=0,
            max=65_530,
            help="Service i listens on port_base + i (edge 0, profiles 1, inventory 2, orders 3,"
            " notifications 4).",
        ),
    ] = 8000,
    host: Annotated[
        str, typer.Option(envvar="STOCKFLOW_HOST", help="Where the embedded services listen.")
    ] = "127.0.0.1",
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed", help="One `stockflow serve` process per service on PostgreSQL + NATS."
        ),
    ] = False,
    database_url: Annotated[
        str,
        typer.Option(
            envvar="STOCKFLOW_DATABASE_URL",
            help="PostgreSQL for --distributed; each service gets its own database next to it"
            " (…/stockflow gives stockflow_inventory, …), created when missing.",
        ),
    ] = "postgresql://postgres@127.0.0.1:5432/stockflow",
    nats_url: Annotated[
        str, typer.Option(envvar="STOCKFLOW_NATS_URL", help="NATS JetStream for --distributed.")
    ] = DEFAULT_NATS_URL,
    bus: Annotated[
        str,
        typer.Option(
            envvar="STOCKFLOW_BUS",
            help="The bus of --distributed: nats (JetStream, the default) or kafka (the"
            " --kafka-url broker, or a private Tansu broker started for the run). pulsar is not"
            " shipped: see docs/bus-backends.md.",
        ),
    ] = "nats",
    kafka_url: Annotated[
        str | None,
        typer.Option(
            envvar="STOCKFLOW_KAFKA_URL",
            help="A Kafka broker for --bus kafka (kafka://host:port[?prefix=…]).",
        ),
    ] = None,
    redis_url: Annotated[
        str,
        typer.Option(
            envvar="STOCKFLOW_REDIS_URL",
            help="Redis for --distributed: edge's rate limits, shared by its replicas"
            " (EDGE_RATE_LIMIT_STORAGE_URL wins; if Redis is down edge fails open and says so).",
        ),
    ] = "redis://127.0.0.1:6379",
    log_file: Annotated[
        Path | None,
        typer.Option(
            envvar="STOCKFLOW_LOG_FILE",
            help="Embedded: every log line also goes here as JSON (appended); what `stockflow"
            " trace` reads. Default: stockflow.log in the data dir.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        bool,
        typer.Option(
            "--seed/--no-seed",
            envvar="STOCKFLOW_SEED",
            help="Add demo stock and users when missing (never replaces what exists).",
        ),
    ] = True,
) -> None:
    """Run the whole system: embedded by default (one process, SQLite, embedded bus)."""
    from stockflow.platform.startup import StartupError

    announce = lambda line: typer.echo(line, err=True)  # noqa: E731 - a one-line printer
    if distributed:
        from stockflow.runtime.embedded import run_distributed

        with contextlib.ExitStack() as stack:
            bus_url = _distributed_bus(bus, nats_url, kafka_url, stack, announce)
            code = run_distributed(
                database_url=database_url,
                bus_url=bus_url,
                port_base=port_base,
                announce=announce,
                seed=seed,
                jwt_secret=_data_dir_jwt_secret(data_dir),
                redis_url=redis_url,
            )
        raise typer.Exit(code)
    from stockflow.runtime.embedded import run_embedded

    try:
        import uvloop

        uvloop.run(
            run_embedded(
                data_dir, port_base, host=host, announce=announce, seed=seed, log_file=log_file
            )
        )
    except StartupError as error:
        _fail_startup(error)


def _distributed_bus(
    bus: str,
    nats_url: str,
    kafka_url: str | None,
    stack: contextlib.ExitStack,
    announce: Callable[[str], None],
) -> str:
    """The bus URL of ``up --distributed --bus …``; a private Tansu when kafka has no URL."""
    if bus == "nats":
        return nats_url
    if bus == "kafka":
        if kafka_url is not None:
            return kafka_url
        from stockflow_kit.messaging.local_brokers import LocalTansu

        broker = stack.enter_context(LocalTansu())
        announce(
            f"started a private Tansu (Kafka protocol) broker on {broker.url}; its memory"
            " engine keeps nothing across a restart of this command"
        )
        return broker.url
    if bus == "pulsar":
        _echo_err(
            "--bus pulsar is not shipped: pulsar-lite 0.2.0, the only Pulsar-protocol broker"
            " available here, loses messages under the bus contract (docs/bus-backends.md)."
            " Use --bus nats or --bus kafka."
        )
        raise typer.Exit(2)
    _echo_err(f"unknown --bus {bus!r}: choose nats or kafka")
    raise typer.Exit(2)


def _data_dir_jwt_secret(data_dir: Path) -> str:
    """The data dir's JWT secret (created with the dir when missing), without locking it."""
    from stockflow.platform.data_dir import DataDir

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        return DataDir(data_dir.resolve()).jwt_secret()
    except OSError as error:
        _echo_err(
            f"cannot read or create the JWT secret in {data_dir}: {error.strerror or error};"
            " choose another --data-dir"
        )
        raise typer.Exit(1) from None


@app.command("token")
def token_command(
    user: Annotated[
        str,
        typer.Option(
            "--user",
            help="The user id: the token's `sub` claim (alice, bob, sam, …).",
            show_default=False,
        ),
    ],
    role: Annotated[
        str,
        typer.Option(
            "--role", help="customer (own profile, orders, notifications) or staff (everything)."
        ),
    ] = "customer",
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar="STOCKFLOW_DATA_DIR",
            help="The deployment's data dir: the token is signed with <DIR>/jwt-secret"
            " (created if missing; STOCKFLOW_JWT_SECRET wins when set).",
        ),
    ] = Path("data"),
    ttl: Annotated[
        int, typer.Option("--ttl", min=1, max=31 * 24 * 3600, help="Seconds until it expires.")
    ] = 3600,
) -> None:
    """Print a dev JWT (HS256) that edge accepts in the embedded deployment.

    The token is the last line of stdout; send it as `Authorization: Bearer <token>`:

        curl -H "Authorization: Bearer $(stockflow token --user alice | tail -1)" localhost:8000/me
    """
    import os

    from stockflow.contracts.identity import ROLES
    from stockflow.edge.adapters.tokens import issue_token
    from stockflow.platform.data_dir import JWT_SECRET_ENV  # not runtime.embedded: seconds

    if role not in ROLES:
        _echo_err(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
        raise typer.Exit(2)
    given = os.environ.get(JWT_SECRET_ENV)
    secret = given or _data_dir_jwt_secret(data_dir)
    try:
        token = issue_token(secret, user=user, role=role, ttl_seconds=ttl)
    except ValueError as error:
        _echo_err(str(error))
        raise typer.Exit(2) from None
    signer = JWT_SECRET_ENV if given else str(data_dir / "jwt-secret")
    typer.echo(f"# {role} {user!r}, expires in {ttl} s, signed with {signer}", err=True)
    typer.echo(token)


@inventory_app.command("rebuild-projection")
def rebuild_projection_command(
    event_store_url: Annotated[
        str, typer.Option(envvar="INVENTORY_EVENT_STORE_URL", help="The inventory's event store.")
    ] = "sqlite:///data/inventory.sqlite3",
    check: Annotated[
        bool, typer.Option("--check", help="Compare the rebuilt rows with the live projection.")
    ] = False,
) -> None:
    """Replace the stock projection by a fold of every event (stop the service first); with
    --check, only compare, and exit 1 if any row differs."""
    from stockflow.runtime.maintenance import rebuild_projection

    problems = asyncio.run(rebuild_projection(event_store_url, check=check, echo=typer.echo))
    if problems:
        raise typer.Exit(1)


# ---------------------------------------------------------------- end of up, serve, inventory


# ---------------------------------------------------------------- audit, bench events
# (auditor and events benchmark; kept in one block so other commands can be added around it)
@app.command("audit")
def audit_command(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="STOCKFLOW_DATA_DIR",
            help="Embedded deployment: audit <DIR>/inventory.sqlite3 and <DIR>/orders.sqlite3."
            " Default: data.",
        ),
    ] = None,
    event_store_url: Annotated[
        str | None,
        typer.Option(help="Audit this store instead: sqlite:///<path> or postgresql://…"),
    ] = None,
    schema: Annotated[str, typer.Option(help="PostgreSQL schema of the inventory.")] = "inventory",
    orders_url: Annotated[
        str | None,
        typer.Option(
            help="The orders database for invariant 5: postgresql://… or sqlite:///<path>."
            " Default with --data-dir: <DIR>/orders.sqlite3; with --event-store-url: none"
            " (invariant 5 not checked).",
        ),
    ] = None,
    orders_schema: Annotated[
        str, typer.Option(help="PostgreSQL schema of the orders table.")
    ] = "public",
    grace: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds an order may stay PENDING past its expires_at (invariant 5)."
        ),
    ] = 5.0,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the report here as JSON.")
    ] = None,
) -> None:
    """Check the invariants of API.md (1-4 by folding the inventory's event log
    independently, 5 against the orders database).

    Exit 0 when all hold, 1 when any is broken, 2 when the data cannot be read.
    """
    from rich.console import Console

    from stockflow.audit import AuditSourceError, audit_data_dir, audit_url, render_report

    try:
        if event_store_url is not None:
            report = audit_url(
                event_store_url,
                schema=schema,
                orders_url=orders_url,
                orders_schema=orders_schema,
                grace=grace,
            )
        else:
            report = audit_data_dir(data_dir or Path("data"), orders_url=orders_url, grace=grace)
    except AuditSourceError as err:
        _echo_err(f"cannot audit: {err}")
        raise typer.Exit(2) from None
    render_report(report, Console())
    if json_file is not None:
        import json

        json_file.write_text(json.dumps(report.to_json(), indent=2))
    raise typer.Exit(0 if report.ok else 1)


# ---------------------------------------------------------------- end of audit, bench events


def main() -> None:
    """Entry point of the ``stockflow`` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main"]
