"""The inventory worker under test: ``stockflow serve inventory`` as a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from typing import Final

import httpx

from stockflow.bench.backends import BenchBackend

__all__ = ["WorkerProcess"]

READY_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 30.0
_SERVE: Final = ("-c", "from stockflow.runtime.cli import main; main()", "serve", "inventory")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WorkerProcess:
    """Start, wait for readiness, scrape metrics, stop with SIGTERM.

    *relay* sets ``INVENTORY_PUBLISH_EVENTS``: whether the worker also relays its committed
    events to the bus (off by default: the bench then measures the command side only);
    *feeder* sets ``INVENTORY_FEEDER`` (``process``: bus consumption in a child process).
    """

    def __init__(
        self,
        backend: BenchBackend,
        *,
        batch_size: int,
        partitions: int,
        relay: bool = False,
        feeder: str = "process",
    ) -> None:
        self.port = _free_port()
        self.env = os.environ | {
            "INVENTORY_EVENT_STORE_URL": backend.event_store_url,
            "BUS_URL": backend.bus_url,
            "INVENTORY_PORT": str(self.port),
            "INVENTORY_PARTITIONS": str(partitions),
            "INVENTORY_BATCH_SIZE": str(batch_size),
            "INVENTORY_PUBLISH_EVENTS": "true" if relay else "false",
            "INVENTORY_FEEDER": feeder,
            "INVENTORY_LOG_LEVEL": os.environ.get("INVENTORY_LOG_LEVEL", "WARNING"),
        }
        self.process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, *_SERVE, env=self.env, stdout=asyncio.subprocess.DEVNULL
        )
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"the inventory worker exited with {self.process.returncode}"
                        " before it was ready; see its log above"
                    )
                try:
                    response = await client.get(f"{self.base_url}/readyz")
                    if response.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        await self.stop()
        raise RuntimeError(f"the inventory worker was not ready within {READY_TIMEOUT:.0f} s")

    async def metrics(self) -> dict[str, float]:
        """Sums of the worker's batch metrics (``<name>_sum``/``_count``), if it exports them."""
        wanted = ("inventory_batch_size", "inventory_commit_duration_seconds")
        totals: dict[str, float] = {}
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                text = (await client.get(f"{self.base_url}/metrics")).text
        except httpx.HTTPError:
            return totals
        for line in text.splitlines():
            name, _, value = line.partition(" ") if "{" not in line else line.partition("} ")
            name = name.split("{", 1)[0]
            if any(name in (f"{w}_sum", f"{w}_count") for w in wanted):
                try:
                    totals[name] = totals.get(name, 0.0) + float(value.split()[0])
                except (ValueError, IndexError):
                    continue
        return totals

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
