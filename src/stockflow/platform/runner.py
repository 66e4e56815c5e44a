"""The one runner: the services of one process, from settings to a graceful stop.

``stockflow up`` (every service in this process, one shared bus) and ``stockflow serve NAME``
(one service) both call :func:`run`; ``up --distributed`` runs one ``serve`` process per
service (:mod:`stockflow.platform.distributed`). The sequence is the same everywhere:

1. bind every port (a port in use fails here, before anything started);
2. create each service's PostgreSQL database if missing, start the buses, check the
   retention windows and start the bus retention;
3. build every service (``spec.build(settings, bus=…)``) and start its HTTP server, so
   ``/healthz`` answers and ``/readyz`` says 503 while it loads;
4. start the services in registry order; a failure is one line that names the dependency
   (:func:`~stockflow.platform.startup.explain`) and stops what was started;
5. wait for SIGINT/SIGTERM (or *shutdown*), then drain the HTTP servers, stop the services in
   reverse order (consumers settle their batch, relays flush), stop retention, close the buses.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from stockflow.platform.databases import ensure_database, is_postgres_url
from stockflow.platform.http_server import HttpServer, bind_port
from stockflow.platform.settings import ServiceSettings
from stockflow.platform.spec import Service, ServiceSpec
from stockflow.platform.startup import StartupError, explain
from stockflow_kit.messaging import Bus, SqliteLogBus, make_bus
from stockflow_kit.messaging.retention import (
    DEFAULT_INTERVAL,
    DEFAULT_LOG_RETENTION,
    Retention,
    RetentionJob,
    check_retention_windows,
    log_trim,
)
from stockflow_kit.observability import configure_logging, configure_tracing

__all__ = ["Unit", "configure_process", "run"]

_log = structlog.get_logger("stockflow.platform")


@dataclass(frozen=True)
class Unit:
    """One service to run: its spec and its settings."""

    spec: ServiceSpec[Any]
    settings: ServiceSettings

    @property
    def name(self) -> str:
        return self.spec.name

    def dependencies(self) -> dict[str, str]:
        """Its URLs by role, for start-up messages."""
        urls = {}
        if self.spec.store_field is not None:  # first: a failing start is most often its store
            urls["database"] = str(getattr(self.settings, self.spec.store_field))
        urls["bus"] = self.settings.bus_url
        return urls


def configure_process(
    settings: ServiceSettings,
    *,
    service: str | None,
    tracer: str,
    log_file: TextIO | None = None,
) -> None:
    """Logging and tracing for this process, once, from settings only (and *log_file*: every
    line also goes there as JSON)."""
    configure_logging(
        json=settings.json_logs,
        level=settings.log_level,
        service=service,
        also_json_to=log_file,
    )
    configure_tracing(tracer, otlp_endpoint=settings.otlp_endpoint)


@dataclass
class _Running:
    unit: Unit
    service: Service
    server: HttpServer
    task: asyncio.Task[None] | None = None
    started: bool = False


async def _prepare_databases(units: Sequence[Unit]) -> None:
    for unit in units:
        url = unit.dependencies().get("database")
        if url is None or not is_postgres_url(url):
            continue
        try:
            if await ensure_database(url):
                _log.info("platform.database_created", service=unit.name, database=url)
        except Exception as error:  # unreachable, refused: said in one line
            raise StartupError(explain(unit.name, error, {"database": url})) from error


async def _start_buses(units: Sequence[Unit]) -> dict[str, Bus]:
    buses: dict[str, Bus] = {}
    for unit in units:
        url = unit.settings.bus_url
        if url in buses:
            continue
        bus = make_bus(url, name=unit.name if len(units) == 1 else "stockflow")
        try:
            await bus.start()
        except Exception as error:  # unreachable broker, unwritable file
            await _close_buses(buses)
            raise StartupError(explain(unit.name, error, {"bus": url})) from error
        buses[url] = bus
    return buses


async def _close_buses(buses: dict[str, Bus]) -> None:
    for bus in buses.values():
        with contextlib.suppress(Exception):
            await bus.close()


def _retention(units: Sequence[Unit], buses: dict[str, Bus]) -> Retention | None:
    """Trim the embedded log; its window must stay below every consumer's processed-id window
    (ADR 0001 "Retention"). JetStream keeps its own limits."""
    jobs: list[RetentionJob] = []
    for url, bus in buses.items():
        if not isinstance(bus, SqliteLogBus):
            continue
        for unit in units:
            if unit.settings.bus_url == url:
                try:
                    check_retention_windows(
                        log_retention=DEFAULT_LOG_RETENTION,
                        processed_retention=unit.settings.processed_retention_seconds,
                        interval=DEFAULT_INTERVAL,
                    )
                except ValueError as error:
                    raise StartupError(f"{unit.name}: {error}") from None
        jobs.append(log_trim(bus, name=f"bus_log_{len(jobs)}" if jobs else "bus_log"))
    return Retention(jobs, interval=DEFAULT_INTERVAL) if jobs else None


async def run(
    units: Sequence[Unit],
    *,
    announce: Callable[[str], None] = lambda _line: None,
    shutdown: asyncio.Event | None = None,
    ready: Callable[[dict[str, int]], None] | None = None,
) -> None:
    """Run *units* in this process until SIGINT/SIGTERM or *shutdown* (see the module docstring).

    Args:
        units: The services, in start order.
        announce: Prints a line for a person (the URLs once every service is ready to start).
        shutdown: Set it to stop; one is made (and wired to the signals) when ``None``.
        ready: Called with ``{service: port}`` once every service has started.

    Raises:
        StartupError: a port in use, a dependency unreachable, a service that failed to start.
    """
    sockets = []
    try:
        for unit in units:
            sockets.append(bind_port(unit.settings.host, unit.settings.port, service=unit.name))
    except OSError as error:
        for sock in sockets:
            sock.close()
        raise StartupError(str(error.strerror or error)) from None
    try:
        await _prepare_databases(units)
        buses = await _start_buses(units)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    try:
        retention = _retention(units, buses)
    except StartupError:
        await _close_buses(buses)
        for sock in sockets:
            sock.close()
        raise
    stop = shutdown or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    retention_task = asyncio.create_task(retention.run()) if retention is not None else None
    running: list[_Running] = []
    try:
        for unit, sock in zip(units, sockets, strict=True):
            with structlog.contextvars.bound_contextvars(service=unit.name):
                service = unit.spec.build(unit.settings, bus=buses[unit.settings.bus_url])
                # A service may have begin_shutdown(): called when its server stops accepting.
                server = HttpServer(
                    service.app, sock, on_shutdown=getattr(service, "begin_shutdown", None)
                )
                entry = _Running(unit, service, server)
                entry.task = asyncio.create_task(entry.server.run_on_socket(), name=unit.name)
            running.append(entry)
        await _wait_listening(running)
        for entry in running:
            announce(f"{entry.unit.name:<14} http://{_host(entry)}:{entry.server.port}")
        for entry in running:
            with structlog.contextvars.bound_contextvars(service=entry.unit.name):
                try:
                    await entry.service.start()
                except Exception as error:
                    # No traceback: the one line below says what failed and what to do.
                    _log.error("platform.start_failed", service=entry.unit.name, error=repr(error))
                    raise StartupError(
                        explain(entry.unit.name, error, entry.unit.dependencies())
                    ) from error
            entry.started = True
        _log.info("platform.started", services=[e.unit.name for e in running])
        if ready is not None:
            ready({e.unit.name: e.server.port for e in running})
        waiter = asyncio.create_task(stop.wait())
        servers = [e.task for e in running if e.task is not None]
        await asyncio.wait([waiter, *servers], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        await _stop(running)
        if retention_task is not None:
            retention_task.cancel()
            await asyncio.gather(retention_task, return_exceptions=True)
        await _close_buses(buses)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        _log.info("platform.stopped", services=[e.unit.name for e in running])


def _host(entry: _Running) -> str:
    host = entry.unit.settings.host
    return f"[{host}]" if ":" in host else host


async def _wait_listening(running: Sequence[_Running]) -> None:
    while not all(e.server.started for e in running):
        for entry in running:
            if entry.task is not None and entry.task.done():
                entry.task.result()  # re-raise why the server could not start
                raise StartupError(f"{entry.unit.name}: its HTTP server stopped at start")
        await asyncio.sleep(0.01)


async def _stop(running: Sequence[_Running]) -> None:
    for entry in running:  # stop accepting, drain requests in flight
        entry.server.should_exit = True
    await asyncio.gather(*(e.task for e in running if e.task is not None), return_exceptions=True)
    for entry in reversed(running):
        if entry.started:
            with structlog.contextvars.bound_contextvars(service=entry.unit.name):
                try:
                    await entry.service.stop()
                except Exception as error:  # the others must still stop
                    _log.error("platform.stop_failed", service=entry.unit.name, exc_info=error)
