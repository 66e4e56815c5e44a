"""The two services ``stockflow bench orders`` drives: ``stockflow serve inventory`` and
``stockflow serve orders`` as subprocesses on one backend, as the deployments run them.

Embedded: SQLite stores and the SQLite-log bus, shared by the two processes (what
``stockflow up`` runs in one process). Distributed: a PostgreSQL database each and NATS
JetStream under the run's stream prefix. Both get the same service credential (the bench
calls their internal routes with it) and their deployment's defaults otherwise: the
inventory with ``INVENTORY_FEEDER=inline`` and its events relayed to the bus (the saga needs
them), the orders with its default saga timeout (30 s). Logs at WARNING on the bench's
stderr (``INVENTORY_LOG_LEVEL`` / ``ORDERS_LOG_LEVEL`` override).
"""

from __future__ import annotations

import asyncio
import os
from typing import Final

from stockflow.bench.backends import BenchBackend
from stockflow.bench.http_servers import cpu_seconds
from stockflow.bench.worker import READY_TIMEOUT, STOP_TIMEOUT, WorkerProcess, serve_argv
from stockflow_kit.lifecycle import LifecycleError, ServiceProcess

__all__ = ["INVENTORY_BATCH_SIZE", "INVENTORY_PARTITIONS", "SagaServices", "inventory_process"]

INVENTORY_BATCH_SIZE: Final = 1000
INVENTORY_PARTITIONS: Final = 16


def inventory_process(backend: BenchBackend, token: str) -> WorkerProcess:
    """The inventory as both phases of the bench run it (the same settings each time)."""
    return WorkerProcess(
        backend,
        batch_size=INVENTORY_BATCH_SIZE,
        partitions=INVENTORY_PARTITIONS,
        relay=True,
        feeder="inline",
        env={"STOCKFLOW_SERVICE_TOKEN": token},
    )


class SagaServices:
    """Inventory and orders on *backend* (which must have an orders database)."""

    def __init__(self, backend: BenchBackend, token: str) -> None:
        if not backend.orders_url:
            raise ValueError("the backend has no orders database (add_orders_database)")
        self.inventory = inventory_process(backend, token)
        self.orders = ServiceProcess(
            serve_argv("orders"),
            name="orders",
            env={
                "ORDERS_DATABASE_URL": backend.orders_url,
                "BUS_URL": backend.bus_url,
                "ORDERS_LOG_LEVEL": os.environ.get("ORDERS_LOG_LEVEL", "WARNING"),
                "STOCKFLOW_SERVICE_TOKEN": token,
            },
            port_env="ORDERS_PORT",
        )

    @property
    def inventory_url(self) -> str:
        return self.inventory.base_url

    @property
    def orders_url(self) -> str:
        return self.orders.base_url

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) each service used so far; absent where unknown."""
        used: dict[str, float] = {}
        for name, pid in (("orders", self.orders.pid), ("inventory", self.inventory.service.pid)):
            seconds = None if pid is None else cpu_seconds(pid)
            if seconds is not None:
                used[name] = seconds
        return used

    async def start(self) -> None:
        """Start both and wait until both are ready; stop them if either is not.

        Raises:
            RuntimeError: If one exits or is not ready within ``READY_TIMEOUT`` seconds.
        """
        self.orders.start()
        results = await asyncio.gather(
            self.inventory.start(), self.orders.wait_ready(READY_TIMEOUT), return_exceptions=True
        )
        for error in results:
            if isinstance(error, LifecycleError | RuntimeError):
                await self.stop()
                raise RuntimeError(f"{error}; see the services' log above") from error
            if isinstance(error, BaseException):
                await self.stop()
                raise error

    async def stop(self) -> None:
        """SIGTERM both (orders first: it consumes what the inventory publishes)."""
        if self.orders.alive:
            await self.orders.stop(STOP_TIMEOUT)
        await self.inventory.stop()
