"""``stockflow bench http``: the cost of one HTTP hop, each row against bare FastAPI in one run.

Every row is a server process on a free port driven by the same closed-loop client
(:mod:`stockflow.bench.http_load`: wrk when installed, else the built-in client) with the
same connections and duration, after a short warm-up:

1. the baseline applications of :mod:`stockflow.bench.http_apps`: ``bare`` (the ratio's
   denominator), ``kit`` (kit middleware, no access log) and ``kit_logging`` (kit middleware,
   JSON logging and one access line per request), under uvicorn and optionally granian;
2. each service's main read and write routes from :data:`SERVICE_ROUTES`, each internal
   service started alone as ``stockflow serve <service>`` on a fresh temporary data
   directory (its own SQLite, the embedded bus; configured by :data:`SERVICE_LAUNCHES`) and
   seeded first; edge's routes through ``stockflow up`` (all five services, embedded, with
   the demo data), called with ``stockflow token`` tokens. A write is always a new one (a
   fresh ``Idempotency-Key`` per request where the route takes one). A route that does not
   answer 2xx when tried once, or a row where most answers are not 2xx, stops the bench.

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
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from stockflow.bench.http_load import FRESH, LoadResult, Target, run_load, wrk_path
from stockflow.bench.http_servers import (
    cpu_seconds,
    credential_env,
    credential_headers,
    exchange,
    free_port,
    free_port_range,
    request,
    running,
    stockflow_command,
)
from stockflow.contracts.identity import ROLE_HEADER, USER_HEADER

Headers = tuple[tuple[str, str], ...]

__all__ = [
    "BASELINES",
    "NON_2XX_LIMIT",
    "SERVICE_LAUNCHES",
    "SERVICE_ROUTES",
    "HttpBenchConfig",
    "HttpRow",
    "Seed",
    "ServiceLaunch",
    "ServiceRoute",
    "check_answers",
    "format_http_table",
    "run_http_bench",
    "serve_service",
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
    """A service route the bench drives: *method* *path* with *body* (JSON) if any.

    *path* and the *headers*' values are formatted with the launch's values (``{alice}``: a
    token, ``{order}``: a seeded order's id); a :data:`~stockflow.bench.http_load.FRESH` in
    them or in *body* is a new value on every request. *crosses* says what a request goes
    through (the row's description).
    """

    service: str
    name: str
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    crosses: str = ""


@dataclass(frozen=True)
class Seed:
    """A request sent once before measuring, which must answer 2xx (else the bench stops).

    Formatted as a :class:`ServiceRoute` is; *keep* names the value the ``id`` of its JSON
    answer is kept under, for the requests after it.
    """

    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    keep: str | None = None


@dataclass(frozen=True)
class ServiceLaunch:
    """How to run a service for the bench.

    Args:
        service: The argument of ``stockflow serve`` (the name of the rows).
        env: ``env(data_dir, port)`` gives the environment variables that configure it.
        seed: Requests sent once it is ready, before measuring.
        command: ``command(data_dir, port)``: what to run instead of ``stockflow serve
            <service>``.
        prepare: ``prepare(data_dir, port, env)``, once it is ready and before the seed:
            the values the seed and the routes are formatted with.
        credential: Whether every request carries the service credential (an internal
            service); edge's routes carry a user's token instead.
    """

    service: str
    env: Callable[[Path, int], dict[str, str]]
    seed: tuple[Seed, ...] = ()
    command: Callable[[Path, int], list[str]] | None = None
    prepare: Callable[[Path, int, Mapping[str, str]], dict[str, str]] | None = None
    credential: bool = True


def _sqlite_env(prefix: str, store_field: str) -> Callable[[Path, int], dict[str, str]]:
    """The environment of ``stockflow serve`` for a service on SQLite and the embedded bus."""
    name = prefix.lower()

    def env(data: Path, port: int) -> dict[str, str]:
        return {
            f"{prefix}_{store_field}": f"sqlite:///{data}/{name}.sqlite3",
            "BUS_URL": f"sqlite:///{data}/bus.sqlite3",
            f"{prefix}_PORT": str(port),
            f"{prefix}_LOG_LEVEL": "INFO",
            f"{prefix}_LOG_JSON": "true",
        }

    return env


def _edge_command(data: Path, port: int) -> list[str]:
    return [*stockflow_command(), "up", "--data-dir", str(data), "--port-base", str(port)]


_JWT_SECRET: Final = "STOCKFLOW_JWT_SECRET"


def _edge_env(data: Path, port: int) -> dict[str, str]:
    return {
        _JWT_SECRET: secrets.token_urlsafe(32),
        # Edge's per-user limit (50/s by default) would answer the load 429: lift it.
        "EDGE_RATE_LIMIT": "1000000/second",
        "STOCKFLOW_LOG_LEVEL": "INFO",
    }


def _edge_prepare(data: Path, port: int, env: Mapping[str, str]) -> dict[str, str]:
    """Tokens for alice (customer) and sam (staff), once the demo data is in."""
    tokens = {
        user: _token(user, role, data, env)
        for user, role in (("alice", "customer"), ("sam", "staff"))
    }
    # The demo seed runs after edge is ready; its stock comes last (SKU-LOW last of all).
    last = Target(port=port, path="/inventory/SKU-LOW", headers=_bearer(tokens["sam"]))
    deadline = time.monotonic() + 60
    while request(last) != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("stockflow up never seeded its demo stock (SKU-LOW)")
        time.sleep(0.2)
    return tokens


def _token(user: str, role: str, data: Path, env: Mapping[str, str]) -> str:
    """``stockflow token`` for *user*, signed with the deployment's secret."""
    argv = [*stockflow_command(), "token", "--user", user, "--role", role, "--data-dir", str(data)]
    done = subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip().splitlines()[-1]


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("Authorization", f"Bearer {token}"),)


def _caller(user: str, role: str = "customer") -> tuple[tuple[str, str], ...]:
    """The identity headers edge sets for *user* on an internal call."""
    return ((USER_HEADER, user), (ROLE_HEADER, role))


_RECEIPT: Final = b'{"qty": 1, "reference": "bench"}'
_PROFILE: Final = b'{"name": "Alice @fresh@", "email": "alice@example.com"}'
_ORDER: Final = b'{"lines": [{"sku": "SKU-1", "qty": 1}]}'
_BENCH_ORDER: Final = b'{"lines": [{"sku": "SKU-BENCH", "qty": 1}]}'
_WEBHOOK: Final = b'{"url": "https://hooks.example.com/bench", "events": ["OrderPlaced"]}'
_KEY: Final = (("Idempotency-Key", FRESH),)
_ALICE: Final = _caller("alice")
_STAFF: Final = _caller("sam", "staff")
_ALICE_TOKEN: Final = _bearer("{alice}")
_STAFF_TOKEN: Final = _bearer("{sam}")

SERVICE_LAUNCHES: Final[dict[str, ServiceLaunch]] = {
    "inventory": ServiceLaunch(
        "inventory",
        _sqlite_env("INVENTORY", "EVENT_STORE_URL"),
        seed=(Seed("POST", f"{STOCK_PATH}/receipts", b'{"qty": 5, "reference": "x"}'),),
    ),
    "profiles": ServiceLaunch(
        "profiles",
        _sqlite_env("PROFILES", "DATABASE_URL"),
        seed=(Seed("PUT", "/profiles/alice", _PROFILE, _ALICE),),
    ),
    "orders": ServiceLaunch(
        "orders",
        _sqlite_env("ORDERS", "DATABASE_URL"),
        seed=(Seed("POST", "/orders", _ORDER, (*_ALICE, *_KEY), keep="order"),),
    ),
    "notifications": ServiceLaunch("notifications", _sqlite_env("NOTIFICATIONS", "DATABASE_URL")),
    "edge": ServiceLaunch(
        "edge",
        _edge_env,
        seed=(
            Seed(
                "POST",
                "/inventory/SKU-BENCH/receipts",
                b'{"qty": 1000000, "reference": "bench"}',
                (*_STAFF_TOKEN, *_KEY),
            ),
        ),
        command=_edge_command,
        prepare=_edge_prepare,
        credential=False,
    ),
}
"""How each service is started; add a row when a service can be served. Each internal
service runs alone (``stockflow serve``, its own SQLite, the embedded bus); edge runs in
front of the four others (``stockflow up``, embedded, with its demo data)."""

_ALONE: Final = "alone"
_ORDERS_ALONE: Final = "alone (no inventory: each order stays PENDING until the saga times out)"
_UP: Final = "under stockflow up"

SERVICE_ROUTES: Final = (
    ServiceRoute("inventory", "read", "GET", STOCK_PATH, crosses=_ALONE),
    ServiceRoute("inventory", "write", "POST", f"{STOCK_PATH}/receipts", _RECEIPT, crosses=_ALONE),
    ServiceRoute("profiles", "read", "GET", "/profiles/alice", headers=_ALICE, crosses=_ALONE),
    ServiceRoute(
        "profiles",
        "write",
        "PUT",
        "/profiles/alice",
        _PROFILE,
        _ALICE,
        crosses="alone, a new name each time",
    ),
    ServiceRoute("orders", "read", "GET", "/orders/{order}", headers=_ALICE, crosses=_ALONE),
    ServiceRoute("orders", "write", "POST", "/orders", _ORDER, (*_ALICE, *_KEY), _ORDERS_ALONE),
    ServiceRoute(
        "notifications",
        "read",
        "GET",
        "/notifications",
        headers=_ALICE,
        crosses="alone, an empty page",
    ),
    ServiceRoute(
        "notifications",
        "write",
        "POST",
        "/webhooks",
        _WEBHOOK,
        _STAFF,
        crosses="alone, a new subscription",
    ),
    ServiceRoute(
        "edge",
        "stock",
        "GET",
        STOCK_PATH,
        headers=_ALICE_TOKEN,
        crosses=f"{_UP}: edge (JWT, rate limit) -> inventory",
    ),
    ServiceRoute(
        "edge", "me", "GET", "/me", headers=_ALICE_TOKEN, crosses=f"{_UP}: edge -> profiles"
    ),
    ServiceRoute(
        "edge",
        "order",
        "POST",
        "/orders",
        _BENCH_ORDER,
        (*_ALICE_TOKEN, *_KEY),
        crosses=f"{_UP}: edge -> orders, then the saga over the bus (inventory reserves)",
    ),
)
"""Each service's main read and write routes (a write is always a new one: inventory's
receipts carry no Idempotency-Key, the others a fresh one)."""

NON_2XX_LIMIT: Final = 0.5
"""A row with more non-2xx answers or errors than this share of its requests stops the bench:
its figure would measure a storm of refusals, not the route."""


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
            Default: all of them.
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
    services: Sequence[str] = ("inventory", "profiles", "orders", "notifications", "edge")
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
            data = Path(tmp) / service
            with serve_service(service, data, config.service_env) as (pid, routes):
                best = _rounds([(t, pid) for _, t in routes], config)
                for (route, target), (result, cpu) in zip(routes, best, strict=True):
                    name = f"{service} {route.name}"
                    progress(f"{name}: {_summary(result, cpu)}")
                    check_answers(name, result)
                    what = f"{route.method} {route.path}, {route.crosses}"
                    route_name = f"{route.method} {target.path}"
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


@contextlib.contextmanager
def serve_service(
    service: str, data: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[tuple[int, list[tuple[ServiceRoute, Target]]]]:
    """Run *service* as :data:`SERVICE_LAUNCHES` says, on a new data dir *data*, prepared and
    seeded: its pid and its routes, each with the request that drives it.

    Raises:
        RuntimeError: A seed request, or a route's request sent once, did not answer 2xx.
    """
    launch = SERVICE_LAUNCHES[service]
    data.mkdir(parents=True)
    port = free_port_range(5) if launch.command is not None else free_port()
    env = {**credential_env(), **launch.env(data, port), **(extra_env or {})}
    auth = credential_headers(env) if launch.credential else ()
    argv = [*stockflow_command(), "serve", service]
    if launch.command is not None:
        argv = launch.command(data, port)
    with running(argv, data, env, Target(port=port)) as pid:
        values = launch.prepare(data, port, env) if launch.prepare is not None else {}

        def target(method: str, path: str, body: bytes | None, headers: Headers) -> Target:
            given = tuple((k, v.format_map(values)) for k, v in headers)
            return Target(
                port=port,
                method=method,
                path=path.format_map(values),
                body=body,
                headers=(*auth, *given),
            )

        for seed in launch.seed:
            status, answer = exchange(target(seed.method, seed.path, seed.body, seed.headers))
            if not 200 <= status < 300:
                raise RuntimeError(f"{service}: seed {seed.method} {seed.path} answered {status}")
            if seed.keep is not None:
                values[seed.keep] = str(msgspec.json.decode(answer)["id"])
        routes = [
            (r, target(r.method, r.path, r.body, r.headers))
            for r in SERVICE_ROUTES
            if r.service == service
        ]
        for route, probe in routes:  # once each: a refused route stops the bench now
            status, answer = exchange(probe)
            if not 200 <= status < 300:
                raise RuntimeError(f"{service} {route.name}: {status} {answer[:300]!r}")
        yield pid, routes


def check_answers(name: str, result: LoadResult) -> None:
    """Stop the bench when most of *result*'s answers were not 2xx (see :data:`NON_2XX_LIMIT`)."""
    refused = result.non_2xx + result.errors
    if not result.requests or refused > NON_2XX_LIMIT * result.requests:
        raise RuntimeError(
            f"{name}: {result.non_2xx} non-2xx answers and {result.errors} errors in "
            f"{result.requests} requests: the row would not measure the route"
        )


def format_http_table(rows: Sequence[HttpRow]) -> str:
    """The rows as a fixed-width table, with the client and its settings in the title."""
    header = f"{'row':<19} {'server':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
    header += f"{'x bare':>7} {'p99 x':>6} {'cpu us':>7} {'cpu x':>6} {'non-2xx':>7} "
    header += f"{'errors':>6}  what"
    lines = [header, "-" * len(header)]
    for row in rows:
        r = row.result
        cpu = "" if row.cpu_us_per_request is None else f"{row.cpu_us_per_request:.0f}"
        cpu_x = "" if row.cpu_ratio is None else f"{row.cpu_ratio:.2f}x"
        lines.append(
            f"{row.name:<19} {row.server:<8} {r.requests_per_s:>8,.0f} {r.p50_ms:>7.2f} "
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
