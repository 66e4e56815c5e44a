"""Settings of the inventory service. Defaults are the embedded deployment.

Constructed only by the runtime (from the environment or flags) and passed down; nothing else
reads the environment. The fields every service has (host, port, bus, logs, credential,
consumer tunables) come from :class:`~stockflow.platform.settings.ServiceSettings`.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from stockflow.platform.settings import ServiceSettings, service_config

__all__ = ["InventorySettings"]


class InventorySettings(ServiceSettings):
    """Configuration of one inventory process: ``INVENTORY_<FIELD>`` (shared fields also read
    ``STOCKFLOW_<FIELD>``, the bus URL also ``BUS_URL``)."""

    model_config = service_config("INVENTORY_")
    service_name: ClassVar[str] = "inventory"

    port: int = Field(8002, ge=0, le=65_535)
    event_store_url: str = "sqlite:///data/inventory.sqlite3"
    """``memory://``, ``sqlite:///<path>`` or ``postgresql://…``."""
    event_store_schema: str = "inventory"
    """The PostgreSQL schema of the event store (ignored by the other stores)."""
    partitions: int = Field(16, ge=1, le=4096)
    """SKUs are hashed into this many partitions; each has exactly one writer."""
    replicas: int = Field(1, ge=1)
    replica_index: int = Field(0, ge=0)
    """This process owns the partitions ``p`` with ``p % replicas == replica_index`` (ADR 0005)."""
    peer_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Base URL of every replica, indexed by replica index (``INVENTORY_PEER_URLS``, comma
    separated). Needed when ``replicas > 1``: reservations spanning replicas call the others."""
    assignment: Literal["static", "leases"] = "static"
    """``static``: partitions by replica index (``replicas``, ``replica_index``, ``peer_urls``;
    ADR 0005). ``leases``: partitions owned through leases in the event store's database, so
    members join and leave at run time (PostgreSQL; ADR 0010; ``replicas`` etc. unused)."""
    member_id: str = ""
    """This member's id in the lease mode (default: ``<host>-<pid>-<random>``)."""
    advertise_url: str = ""
    """The base URL other members call this one at (lease mode; default
    ``http://127.0.0.1:<port>``)."""
    lease_ttl: float = Field(3.0, gt=0)
    """Seconds a lease (and a membership) lasts without renewal: how long the partitions of a
    killed member wait to be taken over."""
    lease_interval: float = Field(0.25, gt=0)
    """Seconds between two rounds of heartbeat, renewal and rebalancing."""
    in_flight_batches: int = Field(1, ge=1, le=8)
    """Consumed batches in the writer at once; >1 lets it decide one while another commits."""
    feeder: Literal["inline", "process"] = "inline"
    """Where bus messages are fetched, decoded and translated: in this process, or in a feeder
    child that streams command batches to the writer over a socket (one replica only; ADR 0006)."""
    low_stock_threshold: int = Field(10, ge=0)
    snapshot_every: int = Field(500, ge=0)
    """Snapshot a SKU after this many new events (0: never)."""
    publish_events: bool = True
    """Relay committed events to the bus (the event log is the outbox)."""
    idempotency_retention_seconds: float = Field(24 * 3600.0, gt=0)
    """How long an Idempotency-Key's stored answer is kept (pruned hourly)."""

    @field_validator("peer_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip().rstrip("/") for url in value.split(",") if url.strip()]
        return value

    @model_validator(mode="after")
    def _check_replicas(self) -> Self:
        if self.replica_index >= self.replicas:
            raise ValueError(f"replica_index must be below replicas ({self.replicas})")
        if self.replicas > self.partitions:
            raise ValueError("replicas may not exceed partitions")
        if self.feeder == "process" and self.replicas > 1:
            raise ValueError(
                "feeder=process needs replicas=1 (spanning orders are coordinated inline)"
            )
        if self.assignment == "leases":
            if self.replicas != 1:
                raise ValueError("assignment=leases takes no replicas/replica_index")
            if self.feeder == "process":
                raise ValueError("feeder=process needs assignment=static")
            if self.lease_interval * 3 > self.lease_ttl:
                raise ValueError("lease_ttl must be at least 3 lease_intervals")
        if self.peer_urls and len(self.peer_urls) != self.replicas:
            raise ValueError(f"peer_urls must name all {self.replicas} replicas, in index order")
        return self
