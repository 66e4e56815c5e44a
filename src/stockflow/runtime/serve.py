"""``stockflow serve <service>``: one service in this process, configured by the environment.

What a container runs. Settings come from the environment (``INVENTORY_*``, ``BUS_URL``);
uvicorn serves the app (its lifespan starts and stops the service) with ``log_config=None``
so the kit's logging stays in charge, and stops gracefully on SIGTERM/SIGINT: the consumers
settle the batch in hand, then the writer, relay and store close.
"""

from __future__ import annotations

import asyncio
from typing import Final

import uvicorn

from stockflow.inventory.bootstrap import build as build_inventory
from stockflow.inventory.settings import InventorySettings
from stockflow_kit.messaging import make_bus
from stockflow_kit.observability import configure_logging, configure_tracing

__all__ = ["SERVICES", "run_inventory", "serve"]

SERVICES: Final = ("inventory",)
"""The services that exist today (and can be served)."""


async def run_inventory(settings: InventorySettings) -> None:
    """Serve the inventory until SIGTERM/SIGINT."""
    bus = make_bus(settings.bus_url, name="inventory")
    await bus.start()
    try:
        service = build_inventory(settings, bus=bus)
        config = uvicorn.Config(
            service.app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        await uvicorn.Server(config).serve()
    finally:
        await bus.close()


def serve(service: str) -> None:
    """Run ``service`` (one of :data:`SERVICES`) with settings from the environment."""
    if service != "inventory":
        raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
    settings = InventorySettings()
    configure_logging(json=settings.log_json, level=settings.log_level, service="inventory")
    # Spans are recorded (trace ids on log lines and in outgoing headers) and exported over
    # OTLP/HTTP when INVENTORY_OTLP_ENDPOINT is set.
    configure_tracing("inventory", otlp_endpoint=settings.otlp_endpoint)
    asyncio.run(run_inventory(settings))
