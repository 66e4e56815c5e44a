"""The inventory worker under test: ``stockflow serve inventory`` as a subprocess."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Final

import httpx
from prometheus_client.parser import text_string_to_metric_families

from stockflow.bench.backends import BenchBackend
from stockflow.bench.http_servers import credential_env
from stockflow_kit.lifecycle import LifecycleError, ServiceProcess

__all__ = ["WorkerProcess", "serve_argv"]

READY_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 30.0
_BATCH_METRICS: Final = (
    "inventory_batch_size_sum",
    "inventory_batch_size_count",
    "inventory_commit_duration_seconds_sum",
    "inventory_commit_duration_seconds_count",
)


def serve_argv(service: str) -> list[str]:
    """``stockflow serve <service>`` with this interpreter (no console script needed)."""
    return [
        sys.executable,
        "-c",
        "from stockflow.runtime.cli import main; main()",
        "serve",
        service,
    ]


class WorkerProcess:
    """Start, wait for readiness, scrape metrics, stop with SIGTERM (a
    :class:`~stockflow_kit.lifecycle.ServiceProcess`, so the worker dies with the bench).

    *relay* sets ``INVENTORY_PUBLISH_EVENTS``: whether the worker also relays its committed
    events to the bus (off by default: the bench then measures the command side only);
    *feeder* sets ``INVENTORY_FEEDER`` (``process``: bus consumption in a child process);
    *env* is set over the rest (the credential of a run that calls the worker over HTTP).
    The worker's stdout is discarded and its stderr (its log) inherited.
    """

    def __init__(
        self,
        backend: BenchBackend,
        *,
        batch_size: int,
        partitions: int,
        relay: bool = False,
        feeder: str = "process",
        env: Mapping[str, str] | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.ready_timeout = ready_timeout
        self.service = ServiceProcess(
            serve_argv("inventory"),
            name="inventory worker",
            env={
                "INVENTORY_EVENT_STORE_URL": backend.event_store_url,
                "BUS_URL": backend.bus_url,
                "INVENTORY_PARTITIONS": str(partitions),
                "INVENTORY_BATCH_SIZE": str(batch_size),
                "INVENTORY_PUBLISH_EVENTS": "true" if relay else "false",
                "INVENTORY_FEEDER": feeder,
                "INVENTORY_LOG_LEVEL": os.environ.get("INVENTORY_LOG_LEVEL", "WARNING"),
                **credential_env(),
                **(env or {}),
            },
            port_env="INVENTORY_PORT",
        )

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def base_url(self) -> str:
        return self.service.base_url

    async def start(self) -> None:
        """Start the worker and wait until it is ready; stop it if it is not.

        Raises:
            RuntimeError: If it exits or is not ready within ``ready_timeout`` seconds
                (``READY_TIMEOUT`` unless given: a worker loading a long log needs more).
        """
        self.service.start()
        try:
            await self.service.wait_ready(self.ready_timeout)
        except LifecycleError as error:
            await self.stop()
            raise RuntimeError(f"{error}; see the worker's log above") from error

    async def metrics(self) -> dict[str, float]:
        """Sums of the worker's batch metrics (``<name>_sum``/``_count``); ``{}`` if the
        scrape fails). One scrape: the bench samples them while the run goes on."""
        try:
            text = await self.service.metrics()
        except httpx.HTTPError:
            return {}
        sums = dict.fromkeys(_BATCH_METRICS, 0.0)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in sums:
                    sums[sample.name] += sample.value
        return sums

    async def stop(self) -> None:
        if self.service.alive:
            await self.service.stop(STOP_TIMEOUT)
