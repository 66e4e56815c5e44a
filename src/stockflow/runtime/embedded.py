"""``stockflow up``: the whole system on one machine.

Embedded (default): one process, every existing service on its own port (inventory on
``port_base + 2``), each with its SQLite file under the data dir and one shared SqliteLogBus,
trimmed hourly (6-day window, checked against the processed-id window: ADR 0001 "Retention").
Distributed (``--distributed``): one ``stockflow serve <service>`` process per service, on
PostgreSQL and NATS JetStream, configured by environment variables.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

import uvicorn

from stockflow.inventory.bootstrap import build as build_inventory
from stockflow.inventory.settings import InventorySettings
from stockflow_kit.messaging import SqliteLogBus
from stockflow_kit.messaging.retention import (
    DEFAULT_INTERVAL,
    DEFAULT_LOG_RETENTION,
    Retention,
    check_retention_windows,
    log_trim,
)
from stockflow_kit.observability import configure_logging, configure_tracing

__all__ = ["PORT_OFFSETS", "run_distributed", "run_embedded"]

PORT_OFFSETS: Final = {"inventory": 2}
"""Port of each existing service = port base + offset (API.md)."""


async def run_embedded(
    data_dir: Path, port_base: int, *, host: str = "127.0.0.1", announce: Callable[[str], None]
) -> None:
    """Serve every existing service in this process until SIGTERM/SIGINT.

    ``data_dir`` must exist and be absolute (the CLI makes it so).
    """
    configure_logging(level=os.environ.get("STOCKFLOW_LOG_LEVEL", "INFO"))
    configure_tracing("stockflow", otlp_endpoint=os.environ.get("STOCKFLOW_OTLP_ENDPOINT"))
    inventory = InventorySettings(
        event_store_url=f"sqlite:///{data_dir / 'inventory.sqlite3'}",
        bus_url=f"sqlite:///{data_dir / 'bus.sqlite3'}",
        host=host,
        port=port_base + PORT_OFFSETS["inventory"],
    )
    # ADR 0001 "Retention": a replayed message must never outlive its processed id.
    check_retention_windows(
        log_retention=DEFAULT_LOG_RETENTION,
        processed_retention=inventory.processed_retention_seconds,
        interval=DEFAULT_INTERVAL,
    )
    bus = SqliteLogBus(inventory.bus_url)
    await bus.start()
    retention = asyncio.create_task(Retention([log_trim(bus)]).run(), name="bus-retention")
    try:
        service = build_inventory(inventory, bus=bus)
        server = uvicorn.Server(
            uvicorn.Config(
                service.app,
                host=host,
                port=inventory.port,
                log_config=None,
                access_log=False,
                lifespan="on",
            )
        )
        announce(f"inventory  http://{host}:{inventory.port}  (data: {data_dir})")
        await server.serve()
    finally:
        retention.cancel()
        await asyncio.gather(retention, return_exceptions=True)
        await bus.close()


def run_distributed(
    *, database_url: str, nats_url: str, port_base: int, announce: Callable[[str], None]
) -> int:
    """Start one ``stockflow serve`` process per existing service; wait; return the worst exit."""
    processes: list[subprocess.Popen[bytes]] = []
    for service, offset in PORT_OFFSETS.items():
        env = {
            **os.environ,
            "INVENTORY_EVENT_STORE_URL": database_url,
            "BUS_URL": nats_url,
            "INVENTORY_PORT": str(port_base + offset),
        }
        command = [str(Path(sys.executable).with_name("stockflow")), "serve", service]
        processes.append(subprocess.Popen(command, env=env))
        announce(f"{service}  http://127.0.0.1:{port_base + offset}  (pid {processes[-1].pid})")

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(process.wait() for process in processes)
