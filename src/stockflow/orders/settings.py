"""Settings of the orders service. Defaults are the embedded deployment.

Constructed only by the runtime (from the environment or flags) and passed down; nothing else
reads the environment. The fields every service has come from
:class:`~stockflow.platform.settings.ServiceSettings`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from stockflow.platform.settings import ServiceSettings, service_config

__all__ = ["OrdersSettings"]


class OrdersSettings(ServiceSettings):
    """Configuration of one orders process: ``ORDERS_<FIELD>`` (shared fields also read
    ``STOCKFLOW_<FIELD>``, the bus URL also ``BUS_URL``)."""

    model_config = service_config("ORDERS_")
    service_name: ClassVar[str] = "orders"

    port: int = Field(8003, ge=0, le=65_535)
    database_url: str = "sqlite:///data/orders.sqlite3"
    """``memory://`` (a throwaway file), ``sqlite:///<path>`` or ``postgresql://…``."""
    saga_timeout_seconds: float = Field(30.0, gt=0)
    """A PENDING order older than this is rejected (``reason: timeout``) and released."""
    saga_check_seconds: float = Field(1.0, gt=0)
    """How often the saga timer looks for PENDING orders past their deadline."""
    idempotency_retention_seconds: float = Field(24 * 3600.0, gt=0)
    """How long an Idempotency-Key's stored answer is kept (pruned hourly)."""
    page_limit: int = Field(100, ge=1, le=1000)
    """The largest page ``GET /orders`` returns."""
