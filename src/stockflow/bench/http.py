"""``stockflow bench http``: the cost of one HTTP hop, each row against bare FastAPI in one run.

Every row is a server process on a free port driven by the same closed-loop client
(:mod:`stockflow.bench.http_load`: wrk when installed, else the built-in client) with the
same connections and duration, after a short warm-up:

1. the baseline applications of :mod:`stockflow.bench.http_apps`: ``bare`` (the ratio's
   denominator), ``kit`` (kit middleware, no access log) and ``kit_logging`` (kit middleware,
   JSON logging and one access line per request), under uvicorn and optionally granian;
2. each service's main routes from :data:`SERVICE_ROUTES`, the service started as
   ``stockflow serve <service>`` on a fresh temporary data directory (configured by
   :data:`SERVICE_LAUNCHES`) and seeded first.

With ``rounds`` above 1 the rows are measured in turn, round after round (the baseline
servers side by side), and each row keeps its best round: on a shared machine every row then
gets its least disturbed slice, instead of whatever the neighbours did during its one slice.

Each row reports requests/s, p50 and p99 latency, ``x bare`` (its requests/s over bare's,
and its p99 over bare's), and the server's CPU time per request (user + system, read from
``/proc/<pid>/stat`` before and after the measurement; empty where there is no ``/proc``)
with ``cpu x``, bare's CPU per request over the row's. On a machine shared with other
work the CPU figure moves less than requests/s: a busy neighbour steals wall time, not the
CPU a request costs. Nothing is asserted: the figures depend on the machine.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from stockflow.bench.http_load import LoadResult, Target, run_load, wrk_path
from stockflow.bench.http_servers import (
    cpu_seconds,
    credential_env,
    credential_headers,
    free_port,
    request,
    running,
    stockflow_command,
)

__all__ = [
    "BASELINES",
    "SERVICE_LAUNCHES",
    "SERVICE_ROUTES",
    "HttpBenchConfig",
    "HttpRow",
    "ServiceLaunch",
    "ServiceRoute",
    "format_http_table",
    "run_http_bench",
]

STOCK_PATH: Final = "/inventory/SKU-1"

BASELINES: Final = (
    ("bare", "bare FastAPI route returning the stock JSON"),
    ("kit", "+ instrument(app, log_requests=False)"),
    ("kit_logging", "+ configure_logging() and the access line"),
    ("kit_sampled", "the same, access line for 1 in 10 fast successes"),
)
"""The baseline applications (names in :data:`stockflow.bench.http_apps.APPS`), in order."""


@dataclass(frozen=True)
class ServiceRoute:
    """A service route the bench drives: *method* *path* with *body* (JSON) if any."""

    service: str
    name: str
    method: str
    path: str
    body: bytes | None = None


@dataclass(frozen=True)
class ServiceLaunch:
    """How to run a service for the bench.

    Args:
        service: The argument of ``stockflow serve``.
        env: ``env(data_dir, port)`` gives the environment variables that configure it.
        seed: Requests ``(method, path, body)`` sent once it is ready, before measuring.
    """

    service: str
    env: Callable[[Path, int], dict[str, str]]
    seed: tuple[tuple[str, str, bytes | None], ...] = ()


def _inventory_env(data: Path, port: int) -> dict[str, str]:
    return {
        "INVENTORY_EVENT_STORE_URL": f"sqlite:///{data}/inventory.sqlite3",
        "BUS_URL": f"sqlite:///{data}/bus.sqlite3",
        "INVENTORY_PORT": str(port),
        "INVENTORY_LOG_LEVEL": "INFO",
        "INVENTORY_LOG_JSON": "true",
    }


_RECEIPT: Final = b'{"qty": 1, "reference": "bench"}'

SERVICE_LAUNCHES: Final[dict[str, ServiceLaunch]] = {
    "inventory": ServiceLaunch(
        "inventory",
        _inventory_env,
        seed=(("POST", f"{STOCK_PATH}/receipts", b'{"qty": 5, "reference": "x"}'),),
    ),
}
"""How each service is started; add a row when a service can be served."""

SERVICE_ROUTES: Final = (
    ServiceRoute("inventory", "read", "GET", STOCK_PATH),
    ServiceRoute("inventory", "write", "POST", f"{STOCK_PATH}/receipts", _RECEIPT),
)
"""Each service's main read and write routes (no Idempotency-Key: every write is new)."""


class HttpRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the table.

    Args:
        name: ``bare``, ``kit``, ``kit_logging`` or ``<service> <route name>``.
        description: What the row measures.
        server: ``uvicorn`` or ``granian``.
        route: ``"<METHOD> <path>"``.
        result: What the client measured.
        rps_ratio: requests/s over bare's (under uvicorn).
        p99_ratio: p99 over bare's.
        cpu_us_per_request: Server CPU time per request, in microseconds (``None``
            without ``/proc``).
        cpu_ratio: bare's CPU per request over this row's (``None`` without ``/proc``).
    """

    name: str
    description: str
    server: str
    route: str
    result: LoadResult
    rps_ratio: float
    p99_ratio: float
    cpu_us_per_request: float | None = None
    cpu_ratio: float | None = None


@dataclass(frozen=True)
class HttpBenchConfig:
    """What ``stockflow bench http`` runs.

    Args:
        duration: Seconds per measurement (6, as in the issue).
        connections: Concurrent keep-alive connections (32).
        warmup: Seconds of discarded load before each measurement.
        client: ``"wrk"``, ``"builtin"`` or ``"auto"`` (wrk when installed).
        servers: Servers for the baseline rows; the first one's ``bare`` is the denominator.
        services: Services whose routes are measured (names in :data:`SERVICE_LAUNCHES`).
        service_env: Extra environment for the service processes.
        rounds: Measurements per row. Above 1, the baseline servers run side by side and
            their rows are measured in turn, round after round, as are each service's
            routes; a row keeps its best round (highest requests/s, with its p99) and its
            lowest CPU per request: on a shared machine, each row's least disturbed slice.
    """

    duration: float = 6.0
    connections: int = 32
    warmup: float = 1.0
    client: str = "auto"
    servers: Sequence[str] = ("uvicorn",)
    services: Sequence[str] = ("inventory",)
    service_env: Mapping[str, str] = field(default_factory=dict)
    rounds: int = 1

    @property
    def tool(self) -> str:
        if self.client == "auto":
            return "wrk" if wrk_path() is not None else "builtin"
        return self.client


def run_http_bench(
    config: HttpBenchConfig, *, progress: Callable[[str], None] = print
) -> list[HttpRow]:
    """Measure every row of *config* in one run; the first row is bare under the first server."""
    measured: list[tuple[str, str, str, str, LoadResult, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="stockflow-bench-http-") as tmp:
        for server in config.servers:
            with contextlib.ExitStack() as servers:
                targets: list[tuple[str, str, Target, int]] = []
                for name, description in BASELINES:
                    argv = [
                        sys.executable, "-m", "stockflow.bench.http_apps", name, "--server", server
                    ]  # fmt: skip
                    target = Target(port=free_port(), path=STOCK_PATH)
                    workdir = Path(tmp) / f"{name}-{server}"
                    command = [*argv, "--port", str(target.port)]
                    pid = servers.enter_context(running(command, workdir, {}, target))
                    targets.append((name, description, target, pid))
                best = _rounds([(t, pid) for _, _, t, pid in targets], config)
                for (name, description, _, _), (result, cpu) in zip(targets, best, strict=True):
                    progress(f"{name} ({server}): {_summary(result, cpu)}")
                    measured.append((name, description, server, f"GET {STOCK_PATH}", result, cpu))
        for service in config.services:
            launch = SERVICE_LAUNCHES[service]
            data = Path(tmp) / service
            data.mkdir()
            port = free_port()
            env = {**credential_env(), **launch.env(data, port), **config.service_env}
            auth = credential_headers(env)
            with running(
                [*stockflow_command(), "serve", service], data, env, Target(port=port)
            ) as pid:
                for method, path, body in launch.seed:
                    request(Target(port=port, method=method, path=path, body=body, headers=auth))
                routes = [r for r in SERVICE_ROUTES if r.service == service]
                route_targets = [
                    Target(port=port, method=r.method, path=r.path, body=r.body, headers=auth)
                    for r in routes
                ]
                best = _rounds([(t, pid) for t in route_targets], config)
                for route, (result, cpu) in zip(routes, best, strict=True):
                    name = f"{service} {route.name}"
                    progress(f"{name}: {_summary(result, cpu)}")
                    what = f"{route.method} {route.path} under stockflow serve {service}"
                    route_name = f"{route.method} {route.path}"
                    measured.append((name, what, "uvicorn", route_name, result, cpu))
    bare, bare_cpu = measured[0][4], measured[0][5]
    return [
        HttpRow(
            name=name,
            description=description,
            server=server,
            route=route,
            result=result,
            rps_ratio=result.requests_per_s / bare.requests_per_s if bare.requests_per_s else 0.0,
            p99_ratio=result.p99_ms / bare.p99_ms if bare.p99_ms else 0.0,
            cpu_us_per_request=cpu,
            cpu_ratio=bare_cpu / cpu if bare_cpu and cpu else None,
        )
        for name, description, server, route, result, cpu in measured
    ]


def format_http_table(rows: Sequence[HttpRow]) -> str:
    """The rows as a fixed-width table, with the client and its settings in the title."""
    header = f"{'row':<16} {'server':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
    header += f"{'x bare':>7} {'p99 x':>6} {'cpu us':>7} {'cpu x':>6} {'non-2xx':>7} "
    header += f"{'errors':>6}  what"
    lines = [header, "-" * len(header)]
    for row in rows:
        r = row.result
        cpu = "" if row.cpu_us_per_request is None else f"{row.cpu_us_per_request:.0f}"
        cpu_x = "" if row.cpu_ratio is None else f"{row.cpu_ratio:.2f}x"
        lines.append(
            f"{row.name:<16} {row.server:<8} {r.requests_per_s:>8,.0f} {r.p50_ms:>7.2f} "
            f"{r.p99_ms:>7.2f} {row.rps_ratio:>6.2f}x {row.p99_ratio:>5.2f}x {cpu:>7} "
            f"{cpu_x:>6} {r.non_2xx:>7} {r.errors:>6}  {row.description}"
        )
    return "\n".join(lines)


def _rounds(
    targets: Sequence[tuple[Target, int]], config: HttpBenchConfig
) -> list[tuple[LoadResult, float | None]]:
    """Each ``(target, server pid)`` measured *config.rounds* times in turn; the best of each."""
    best: list[tuple[LoadResult, float | None] | None] = [None] * len(targets)
    for _ in range(config.rounds):
        for i, (target, pid) in enumerate(targets):
            result, cpu = _measure(target, config, pid)
            kept = best[i]
            if kept is None:
                best[i] = (result, cpu)
                continue
            fastest = result if result.requests_per_s > kept[0].requests_per_s else kept[0]
            cpus = [c for c in (cpu, kept[1]) if c is not None]
            best[i] = (fastest, min(cpus) if cpus else None)
    return [b for b in best if b is not None]


def _measure(target: Target, config: HttpBenchConfig, pid: int) -> tuple[LoadResult, float | None]:
    """Load *target*; also the CPU microseconds process *pid* spent per request."""
    if config.warmup > 0:
        run_load(target, connections=config.connections, duration=config.warmup, tool="builtin")
    before = cpu_seconds(pid)
    result = run_load(
        target, connections=config.connections, duration=config.duration, tool=config.tool
    )
    after = cpu_seconds(pid)
    if before is None or after is None or not result.requests:
        return result, None
    return result, (after - before) / result.requests * 1e6


def _summary(result: LoadResult, cpu: float | None) -> str:
    text = f"{result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
    text += f"p99 {result.p99_ms:.2f} ms"
    return text if cpu is None else f"{text}, {cpu:.0f} us CPU/request"
