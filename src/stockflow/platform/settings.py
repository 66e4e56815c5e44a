"""The settings every stockflow service shares, and how they are read from the environment.

A service subclasses :class:`ServiceSettings` with its own prefix and adds what is its own
(its store URL, its tunables)::

    class OrdersSettings(ServiceSettings):
        model_config = service_config("ORDERS_")
        database_url: str = "sqlite:///data/orders.sqlite3"

Every field reads ``<PREFIX><FIELD>`` (``ORDERS_PORT``). The fields in :data:`SHARED_FIELDS`
also fall back to ``STOCKFLOW_<FIELD>`` (one value for every service of a deployment: the log
level, the OTLP endpoint, the service credential), and ``bus_url`` to ``BUS_URL``. The
service's own variable wins over the shared one, and an explicit keyword argument over both.

Settings are constructed only by the runtime (``stockflow.runtime``) and passed down.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Final, Literal

from prometheus_client import CollectorRegistry
from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from starlette.applications import Starlette

from stockflow_kit.http import (
    DEFAULT_BODY_TIMEOUT_SECONDS,
    DEFAULT_MAX_IN_FLIGHT,
    ErrorTable,
    instrument,
)
from stockflow_kit.observability.forwarding import Collectable

__all__ = ["SHARED_FIELDS", "LogFormat", "ServiceSettings", "service_config"]

LogFormat = Literal["auto", "json", "console"]

SHARED_FIELDS: Final = frozenset(
    {"bus_url", "log_level", "log_format", "otlp_endpoint", "service_token", "host"}
)
"""Fields that also read ``STOCKFLOW_<FIELD>`` when the service's own variable is unset."""

_LEGACY: Final = {"bus_url": ("BUS_URL",)}


def service_config(prefix: str) -> SettingsConfigDict:
    """The ``model_config`` of a service's settings class with env prefix *prefix*."""
    return SettingsConfigDict(env_prefix=prefix, frozen=True, extra="ignore")


class _SharedEnvSource(PydanticBaseSettingsSource):
    """``STOCKFLOW_<FIELD>`` (and ``BUS_URL``) for the shared fields only."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for name in (f"STOCKFLOW_{field_name.upper()}", *_LEGACY.get(field_name, ())):
            value = os.environ.get(name)
            if value is not None:
                return value, field_name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            if name not in SHARED_FIELDS:
                continue
            value, key, _complex = self.get_field_value(field, name)
            if value is not None:
                found[key] = value
        return found


class ServiceSettings(BaseSettings):
    """What every service has: where it listens, its bus, logs, traces, credential, limits and
    how its consumers fetch. Defaults are the embedded deployment's."""

    model_config = service_config("STOCKFLOW_SERVICE_")

    service_name: ClassVar[str] = "service"
    """The service's name (``inventory``); set by each subclass."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65_535)
    bus_url: str = "sqlite:///data/bus.sqlite3"
    """``memory://``, ``sqlite:///<path>``, ``nats://host:port`` or ``kafka://host:port``."""
    log_level: str = "INFO"
    log_format: LogFormat = "auto"
    """``json`` lines, a ``console`` for people, or ``auto``: JSON unless stderr is a terminal."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP endpoint for traces (``http://collector:4318``); none: spans are not exported."""
    service_token: SecretStr | None = None
    """The credential services present on internal routes. ``stockflow up`` generates one into
    the data dir; ``stockflow serve`` refuses to start without it."""
    max_body_bytes: int = Field(65_536, ge=1024)
    max_in_flight: int = Field(DEFAULT_MAX_IN_FLIGHT, ge=1)
    """Requests handled at once; beyond it a 503 with ``Retry-After`` (load shedding). The
    default (64) is measured: docs/benchmarks.md, "Admission control"."""
    body_timeout_seconds: float = Field(DEFAULT_BODY_TIMEOUT_SECONDS, gt=0)
    """A request body that has not arrived within this many seconds gets a 408."""
    log_sample_rate: float = Field(1.0, gt=0, le=1)
    """Share of fast successful requests written to the access log (errors and slow requests
    always are); 1 logs every request."""
    slow_request_seconds: float = Field(1.0, gt=0)
    """A request slower than this is always logged, whatever the sample rate."""
    batch_size: int = Field(1000, ge=1, le=10_000)
    """Most messages a consumer fetches (and a writer commits) at once."""
    batch_wait: float = Field(0.05, gt=0)
    """Seconds a consumer waits for the first message of a batch."""
    ack_wait: float = Field(30.0, gt=0)
    """Seconds a delivery may stay unacked before the bus redelivers it."""
    max_deliver: int = Field(5, ge=1)
    """Deliveries a message gets before it is dead-lettered."""
    processed_retention_seconds: float = Field(7 * 24 * 3600.0, gt=0)
    """How long processed message ids are kept for dedupe (ADR 0004)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SharedEnvSource(settings_cls), file_secret_settings)

    @property
    def json_logs(self) -> bool | None:
        """``configure_logging(json=…)``: ``None`` lets it decide by the terminal."""
        return {"auto": None, "json": True, "console": False}[self.log_format]

    def instrument(
        self,
        app: Starlette,
        *,
        errors: ErrorTable | None = None,
        registry: CollectorRegistry | None = None,
        metrics: Collectable | None = None,
    ) -> None:
        """The kit's HTTP layer on *app* with this service's limits and log settings: every
        service is instrumented the same way (see ``stockflow_kit.http.instrument``).
        *metrics*: what ``/metrics`` serves when more than *registry* (a child's, merged)."""
        instrument(
            app,
            service=self.service_name,
            errors=errors,
            registry=registry,
            max_body_bytes=self.max_body_bytes,
            max_in_flight=self.max_in_flight,
            body_timeout_seconds=self.body_timeout_seconds,
            log_sample_rate=self.log_sample_rate,
            slow_request_seconds=self.slow_request_seconds,
            metrics_source=metrics,
        )

    def token(self) -> str | None:
        """The service credential in clear, or ``None`` when none is configured."""
        return None if self.service_token is None else self.service_token.get_secret_value()
