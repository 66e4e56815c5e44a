"""The processes ``stockflow bench claims`` starts: edge and profiles as ``stockflow serve``
runs them, and the fixtures of :mod:`stockflow.bench.claims_apps`, each a
:class:`~stockflow_kit.lifecycle.ServiceProcess` (so it dies with the bench).

Every process logs at WARNING to the bench's stderr; edge gets a rate limit no benchmark
reaches (the load is many requests from few users) and the run's JWT secret.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from stockflow.bench.worker import READY_TIMEOUT, STOP_TIMEOUT, serve_argv
from stockflow_kit.lifecycle import LifecycleError, ServiceProcess, free_port

__all__ = [
    "Credentials",
    "Tokens",
    "edge_process",
    "fixture_process",
    "profiles_process",
    "start_all",
    "stop_all",
]

UNREACHED_RATE_LIMIT: Final = "1000000/second"

Tokens = Callable[[str, str], str]
"""``tokens(user, role)``: a JWT edge accepts, signed with the run's secret."""


@dataclass(frozen=True)
class Credentials:
    """What one run's processes and load share: the customers' tokens, the secret edge (and
    the composer) checks them with, the service credential, and the run's id (in user ids,
    SKUs and keys)."""

    tokens: Tokens
    jwt_secret: str
    service_token: str
    run: str


def edge_process(
    token: str,
    jwt_secret: str,
    downstreams: Mapping[str, str],
    *,
    bus_url: str,
    name: str = "edge",
) -> ServiceProcess:
    """``stockflow serve edge`` with its downstreams at *downstreams* (``profiles``,
    ``orders``, ...: ``EDGE_<NAME>_URL``), on the bus at *bus_url*."""
    env = {
        "BUS_URL": bus_url,
        "EDGE_JWT_SECRET": jwt_secret,
        "EDGE_RATE_LIMIT": UNREACHED_RATE_LIMIT,
        "EDGE_LOG_LEVEL": os.environ.get("EDGE_LOG_LEVEL", "WARNING"),
        "STOCKFLOW_SERVICE_TOKEN": token,
    }
    env |= {f"EDGE_{downstream.upper()}_URL": url for downstream, url in downstreams.items()}
    return ServiceProcess(serve_argv("edge"), name=name, env=env, port_env="EDGE_PORT")


def profiles_process(token: str, workdir: Path) -> ServiceProcess:
    """``stockflow serve profiles`` on its own SQLite database and SQLite-log bus."""
    return ServiceProcess(
        serve_argv("profiles"),
        name="profiles",
        env={
            "PROFILES_DATABASE_URL": f"sqlite:///{workdir / 'profiles.sqlite3'}",
            "BUS_URL": f"sqlite:///{workdir / 'profiles-bus.sqlite3'}",
            "PROFILES_LOG_LEVEL": os.environ.get("PROFILES_LOG_LEVEL", "WARNING"),
            "STOCKFLOW_SERVICE_TOKEN": token,
        },
        port_env="PROFILES_PORT",
    )


def fixture_process(
    app: str, token: str, args: Sequence[str], *, name: str, jwt_secret: str = ""
) -> ServiceProcess:
    """One fixture of :mod:`stockflow.bench.claims_apps` (``fragment``, ``composer`` or
    ``sync_orders``) with *args*, on a free port; the secrets go in its environment."""
    port = free_port()
    argv = [sys.executable, "-m", "stockflow.bench.claims_apps", app, "--port", str(port)]
    env = {"STOCKFLOW_SERVICE_TOKEN": token, "CLAIMS_JWT_SECRET": jwt_secret}
    return ServiceProcess([*argv, *args], name=name, port=port, env=env)


async def start_all(processes: Iterable[ServiceProcess]) -> None:
    """Start every one and wait until all are ready.

    Raises:
        RuntimeError: One exited or was not ready within ``READY_TIMEOUT`` seconds (all
            are stopped then).
    """
    started = list(processes)
    for process in started:
        process.start()
    try:
        await asyncio.gather(*(p.wait_ready(READY_TIMEOUT) for p in started))
    except LifecycleError as error:
        await stop_all(started)
        raise RuntimeError(f"{error}; see the log above") from error


async def stop_all(processes: Iterable[ServiceProcess]) -> None:
    """SIGTERM every one that runs, in order."""
    for process in processes:
        if process.alive:
            await process.stop(STOP_TIMEOUT)
