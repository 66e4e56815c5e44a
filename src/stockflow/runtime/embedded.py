"""``stockflow up``: the whole system on one machine, from the one registry of services.

Embedded (default): one process, every service of :data:`~stockflow.runtime.registry.SERVICES`
on ``port_base + offset``, each with its SQLite file under the data dir, and one shared
durable embedded bus (``<data dir>/bus.sqlite3``). The data dir is locked for this process and
holds the generated service credential.

Distributed (``--distributed``): one supervised ``stockflow serve <service>`` process per
service (restarted with a jittered backoff if it dies), each on its own PostgreSQL database
next to ``--database-url`` (``…/stockflow`` gives ``stockflow_inventory``, …) and NATS
JetStream, configured through the environment only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import structlog

from stockflow.platform.data_dir import JWT_SECRET_ENV, DataDir
from stockflow.platform.runner import Unit, configure_process, run
from stockflow.platform.spec import ServiceSpec
from stockflow.platform.startup import redact_url
from stockflow.runtime.registry import SERVICES
from stockflow_kit.lifecycle import ServiceProcess, Supervisor

__all__ = [
    "JWT_SECRET_ENV",
    "LOG_FILE",
    "distributed_env",
    "embedded_units",
    "run_distributed",
    "run_embedded",
    "service_urls",
]

_log = structlog.get_logger("stockflow.runtime")

LOG_FILE: Final = "stockflow.log"
"""The embedded deployment's JSON log, in the data dir (``stockflow up --log-file`` moves it)."""
_JWT_SECRET_FIELD: Final = "jwt_secret"
_SHARED_LIMITS_FIELD: Final = "rate_limit_storage_url"
"""Edge's rate-limit storage: the distributed deployment shares it (Redis) across replicas."""


def embedded_units(
    data_dir: Path,
    *,
    port_base: int,
    host: str,
    token: str,
    jwt_secret: str | None = None,
    services: Sequence[ServiceSpec[Any]] = SERVICES,
) -> list[Unit]:
    """The settings of every service for the embedded deployment in *data_dir*.

    Ports, the bus, the stores, the credential, the URLs of the services each one calls
    (``ServiceSpec.calls``), the stores it audits (``ServiceSpec.audits``) and the JWT secret
    (to a service with a ``jwt_secret`` setting: edge) are given here; everything else comes
    from the environment (``STOCKFLOW_LOG_LEVEL``, ``INVENTORY_BATCH_SIZE``, …) or the
    defaults.

    Raises:
        StartupError: a variable of the environment does not fit its setting.
    """
    units = []
    urls = service_urls(services, port_base=port_base)
    stores = {s.name: s.embedded_store_url(data_dir) for s in services if s.store_field}
    for spec in services:
        values: dict[str, object] = {
            "host": host,
            "port": port_base + spec.port_offset,
            "bus_url": f"sqlite:///{data_dir / 'bus.sqlite3'}",
            "service_token": token,
            **spec.call_urls(urls),
            **spec.audit_store_urls(stores),
        }
        if spec.store_field is not None:
            values[spec.store_field] = stores[spec.name]
        if (
            jwt_secret is not None
            and _JWT_SECRET_FIELD in spec.settings.model_fields
            and spec.env_name(_JWT_SECRET_FIELD) not in os.environ
        ):
            values[_JWT_SECRET_FIELD] = jwt_secret
        units.append(Unit(spec, spec.load_settings(**values)))
    return units


def service_urls(services: Sequence[ServiceSpec[Any]], *, port_base: int) -> dict[str, str]:
    """``{service: http://127.0.0.1:<port>}``: where the services of one machine call each
    other (loopback, whatever address they listen on)."""
    return {spec.name: f"http://127.0.0.1:{port_base + spec.port_offset}" for spec in services}


async def run_embedded(
    data_dir: Path,
    port_base: int,
    *,
    host: str = "127.0.0.1",
    announce: Callable[[str], None],
    shutdown: asyncio.Event | None = None,
    seed: bool = True,
    log_file: Path | None = None,
) -> None:
    """Serve every service in this process until SIGTERM/SIGINT (or *shutdown*); with *seed*,
    add the missing demo data once every service runs (:mod:`~stockflow.runtime.seed`).

    Every log line goes to standard error and, as JSON, to *log_file* (appended; ``None``:
    :data:`LOG_FILE` in the data dir), which ``stockflow trace`` reads.

    Raises:
        StartupError: the data dir is unusable or in use, a port is taken, a service failed.
    """
    held = DataDir.open(data_dir)
    seeding: set[asyncio.Task[None]] = set()
    log_path = held.path / LOG_FILE if log_file is None else log_file

    def started(ports: dict[str, int]) -> None:
        if seed:
            urls = {name: f"http://{host}:{port}" for name, port in ports.items()}
            task = asyncio.create_task(_seed(urls, token, announce))
            seeding.add(task)
            task.add_done_callback(seeding.discard)

    stack = contextlib.ExitStack()
    try:
        token = held.service_token()
        units = embedded_units(
            held.path,
            port_base=port_base,
            host=host,
            token=token,
            jwt_secret=os.environ.get(JWT_SECRET_ENV) or held.jwt_secret(),
        )
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = stack.enter_context(log_path.open("a", encoding="utf-8"))
        configure_process(units[0].settings, service=None, tracer="stockflow", log_file=log)
        for unit in units:
            if unit.name == "edge":
                announce(
                    _console_line(f"http://{_url_host(unit.settings.host)}:{unit.settings.port}")
                )
        announce(f"stockflow (embedded), data in {held.path}, logs also in {log_path}:")
        await run(units, announce=announce, shutdown=shutdown, ready=started)
    finally:
        for task in seeding:
            task.cancel()
        held.release()
        stack.close()


def _console_line(edge_url: str) -> str:
    return f"console        {edge_url.rstrip('/')}/  (live: health, RED, breakers, flow, audit; staff: orders, stock)"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _seed(urls: dict[str, str], token: str, announce: Callable[[str], None]) -> None:
    """Seed the demo data; a failure is reported, never fatal (the system runs without it)."""
    from stockflow.runtime.seed import seed_demo

    try:
        await seed_demo(urls, token, announce=announce)
    except Exception as error:  # the demo data is a convenience: say so and carry on
        _log.warning("runtime.demo_seed_failed", error=repr(error))
        announce(f"demo data not seeded ({type(error).__name__}: {error}); the system runs")


def distributed_env(
    spec: ServiceSpec[Any],
    *,
    database_url: str,
    bus_url: str,
    port_base: int,
    token: str,
    jwt_secret: str | None = None,
    services: Sequence[ServiceSpec[Any]] = SERVICES,
    redis_url: str | None = None,
) -> dict[str, str]:
    """The environment of ``stockflow serve <spec.name>`` in the distributed deployment
    (*redis_url*: where a service with a ``rate_limit_storage_url`` setting, edge, keeps its
    limits, so every replica counts against the same ones; its own variable wins)."""
    env = {
        spec.env_name("port"): str(port_base + spec.port_offset),
        "BUS_URL": bus_url,
        "STOCKFLOW_SERVICE_TOKEN": token,
    }
    if spec.store_field is not None:
        env[spec.env_name(spec.store_field)] = spec.distributed_store_url(database_url)
    urls = service_urls(services, port_base=port_base)
    stores = {s.name: s.distributed_store_url(database_url) for s in services if s.store_field}
    for field, url in (spec.call_urls(urls) | spec.audit_store_urls(stores)).items():
        env[spec.env_name(field)] = url
    secret_env = spec.env_name(_JWT_SECRET_FIELD)
    if (
        jwt_secret is not None
        and _JWT_SECRET_FIELD in spec.settings.model_fields
        and secret_env not in os.environ
    ):
        env[secret_env] = jwt_secret
    limits_env = spec.env_name(_SHARED_LIMITS_FIELD)
    if (
        redis_url is not None
        and _SHARED_LIMITS_FIELD in spec.settings.model_fields
        and limits_env not in os.environ
    ):
        env[limits_env] = redis_url
    return env


def run_distributed(
    *,
    database_url: str,
    bus_url: str,
    port_base: int,
    announce: Callable[[str], None],
    services: Sequence[ServiceSpec[Any]] = SERVICES,
    seed: bool = True,
    jwt_secret: str | None = None,
    redis_url: str | None = None,
) -> int:
    """Run one supervised ``stockflow serve`` per service until SIGTERM/SIGINT; exit code 0.

    The service credential is ``STOCKFLOW_SERVICE_TOKEN`` if set, else a random one for this
    run (every process of the run shares it). The JWT secret (edge's) is
    ``STOCKFLOW_JWT_SECRET`` if set, else *jwt_secret* (the CLI passes the data dir's, so
    ``stockflow token`` signs tokens this deployment accepts).
    """
    token = os.environ.get("STOCKFLOW_SERVICE_TOKEN") or secrets.token_urlsafe(32)
    jwt_secret = os.environ.get(JWT_SECRET_ENV) or jwt_secret
    stockflow = str(Path(sys.executable).with_name("stockflow"))
    processes = [
        ServiceProcess(
            [stockflow, "serve", spec.name],
            name=spec.name,
            env=distributed_env(
                spec,
                database_url=database_url,
                bus_url=bus_url,
                port_base=port_base,
                token=token,
                jwt_secret=jwt_secret,
                services=services,
                redis_url=redis_url,
            ),
            port=port_base + spec.port_offset,
        )
        for spec in services
    ]
    # The services behind edge start together: none needs another to be ready to start (they
    # call each other through breakers and retries, and talk over the bus), and one after the
    # other they took 17 s. Edge, the public entry, opens once they are all ready.
    behind_edge = {spec.name for spec in services if spec.name != "edge"}
    supervisor = Supervisor(processes, together=behind_edge, ready_within=120.0)

    async def seed_when_started() -> None:
        await supervisor.wait_started()
        await _seed({p.name: p.base_url for p in processes}, token, announce)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        running = asyncio.create_task(supervisor.run())
        for process in processes:
            if process.name == "edge":
                announce(_console_line(process.base_url))
        announce(f"stockflow (distributed): one process per service, bus {redact_url(bus_url)}")
        for process in processes:
            announce(f"{process.name:<14} {process.base_url}")
        seeding = asyncio.create_task(seed_when_started()) if seed else None
        done, _ = await asyncio.wait(
            [running, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if seeding is not None:
            seeding.cancel()
        await supervisor.stop()
        if running in done:
            running.result()
        else:
            await asyncio.gather(running, return_exceptions=True)

    asyncio.run(main())
    return 0
