"""Settings of the notifications service. Defaults are the embedded deployment.

Constructed only by the runtime (from the environment or flags) and passed down; nothing else
reads the environment. The fields every service has come from
:class:`~stockflow.platform.settings.ServiceSettings`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from stockflow.platform.settings import ServiceSettings, service_config

__all__ = ["NotificationsSettings"]


class NotificationsSettings(ServiceSettings):
    """Configuration of one notifications process: ``NOTIFICATIONS_<FIELD>`` (shared fields
    also read ``STOCKFLOW_<FIELD>``, the bus URL also ``BUS_URL``). List fields take JSON
    (``NOTIFICATIONS_WEBHOOK_ALLOWED_HOSTS='["127.0.0.1", "localhost"]'``)."""

    model_config = service_config("NOTIFICATIONS_")
    service_name: ClassVar[str] = "notifications"

    port: int = Field(8004, ge=0, le=65_535)
    database_url: str = "sqlite:///data/notifications.sqlite3"
    """``memory://`` (a throwaway file), ``sqlite:///<path>`` or ``postgresql://…``."""
    page_limit: int = Field(100, ge=1, le=1000)
    """The largest page ``GET /notifications`` and the delivery log return."""
    delivery_retention_seconds: float = Field(30 * 24 * 3600.0, gt=0)
    """How long delivered and dead deliveries (and their attempts) stay in the delivery log."""
    webhook_allowed_hosts: list[str] = Field(default_factory=list)
    """SSRF allowlist: ``host``, ``host:port``, ``*.domain``, an IP or a network
    (``10.1.0.0/16``). A listed host may resolve to a private address; nothing private is
    allowed otherwise. Empty by default: list ``127.0.0.1`` / ``localhost`` for a demo."""
    webhook_allow_public: bool = True
    """Also accept public hosts that are not on the allowlist (refuse them when false)."""
    webhook_max_attempts: int = Field(8, ge=1, le=100)
    """Attempts a delivery gets before it is dead."""
    webhook_backoff_initial: float = Field(1.0, gt=0)
    """Seconds: the cap of the first retry's delay (full jitter, doubling per attempt)."""
    webhook_backoff_max: float = Field(3600.0, gt=0)
    """Seconds: the largest cap of a retry's delay."""
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    """Per-attempt timeout of a delivery (connect, send, answer)."""
    webhook_poll_seconds: float = Field(1.0, gt=0)
    """How often the dispatcher looks for due deliveries (it is also woken by new ones)."""
    webhook_batch_size: int = Field(100, ge=1, le=10_000)
    """Most deliveries the dispatcher claims at once."""
    webhook_concurrency: int = Field(16, ge=1, le=1000)
    """Endpoints sent to at once (each endpoint's deliveries go one at a time)."""
    webhook_breaker_failures: int = Field(5, ge=1)
    """Consecutive failed attempts that open an endpoint's circuit breaker."""
    webhook_breaker_reset_seconds: float = Field(30.0, gt=0)
    """Seconds an open breaker waits before one trial delivery."""
