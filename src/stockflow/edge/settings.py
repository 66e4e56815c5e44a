"""Settings of the edge service. Defaults are the embedded deployment.

Constructed only by the runtime (from the environment or flags) and passed down; nothing else
reads the environment. The fields every service has come from
:class:`~stockflow.platform.settings.ServiceSettings`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from stockflow.platform.settings import ServiceSettings, service_config

__all__ = ["EdgeSettings"]


class EdgeSettings(ServiceSettings):
    """Configuration of one edge process: ``EDGE_<FIELD>`` (shared fields also read
    ``STOCKFLOW_<FIELD>``, the bus URL also ``BUS_URL``)."""

    model_config = service_config("EDGE_")
    service_name: ClassVar[str] = "edge"

    port: int = Field(8000, ge=0, le=65_535)

    # Downstreams: set by the runners from ServiceSpec.calls (EDGE_<NAME>_URL wins).
    profiles_url: str = "http://127.0.0.1:8001"
    inventory_url: str = "http://127.0.0.1:8002"
    orders_url: str = "http://127.0.0.1:8003"
    notifications_url: str = "http://127.0.0.1:8004"
    downstream_timeout_seconds: float = Field(5.0, gt=0)
    """Per attempt, connection to last byte."""
    downstream_deadline_seconds: float = Field(10.0, gt=0)
    """Per call, retries included."""
    downstream_attempts: int = Field(3, ge=1, le=10)
    """Attempts of a retryable call (GET, PUT, or any request with an Idempotency-Key)."""
    breaker_failure_threshold: int = Field(5, ge=1)
    """Consecutive failures that open a downstream's breaker."""
    breaker_reset_seconds: float = Field(10.0, gt=0)
    """Seconds a breaker stays open before a trial call."""
    downstream_max_concurrent: int = Field(64, ge=1)
    """Calls in flight at once per downstream (its bulkhead)."""

    # Auth.
    jwt_secret: SecretStr | None = None
    """The HS256 key. ``stockflow up`` passes the data dir's ``jwt-secret``."""
    jwt_jwks_url: str | None = None
    """A JWKS document (``https://issuer/.well-known/jwks.json``): RS256 tokens are checked
    against its keys (fetched on first use, cached ``jwt_jwks_cache_seconds``)."""
    jwt_jwks_cache_seconds: float = Field(300.0, gt=0)
    jwt_algorithms: tuple[str, ...] = ("HS256", "RS256")
    """Accepted ``alg`` values; HS* need ``jwt_secret``, RS*/ES*/PS* ``jwt_jwks_url``."""
    jwt_issuer: str | None = None
    """When set, tokens must carry this ``iss``."""
    jwt_audience: str | None = None
    """When set, tokens must carry this ``aud``."""
    jwt_leeway_seconds: float = Field(30.0, ge=0, le=300)
    """Clock skew tolerated on ``exp``/``nbf``/``iat``."""

    # Rate limits.
    rate_limit: str = "50/second;1000/minute"
    """Per client (the token's ``sub``, else the client address), in the ``limits`` notation;
    several limits separated by ``;``."""
    rate_limit_strategy: Literal["moving-window", "fixed-window"] = "moving-window"
    rate_limit_storage_url: str = "memory://"
    """``memory://`` (this process) or ``redis://host:port`` (shared by every edge replica)."""
    rate_limit_timeout_seconds: float = Field(0.2, gt=0)
    """A storage call slower than this counts as a failure: the request is let through."""

    # The last-known profile of GET /me when profiles is down.
    profile_deadline_seconds: float = Field(2.0, gt=0)
    """``GET /me`` waits at most this long for profiles (retries included) before it serves
    the last known copy: a hung profiles costs a client seconds, not the full deadline."""
    profile_cache_size: int = Field(10_000, ge=1)
    profile_cache_ttl_seconds: float = Field(24 * 3600.0, gt=0)

    # The live console (GET /, GET /console/stream).
    console_interval_seconds: float = Field(1.0, gt=0, le=60)
    """Seconds between two gathers of the console's figures (shared by every stream)."""

    # The console's audit button (POST /console/audit runs ``stockflow audit`` on these).
    # Set by the runners from ServiceSpec.audits (EDGE_AUDIT_<NAME>_STORE_URL wins).
    audit_inventory_store_url: str | None = None
    """The inventory's event store; without it the console cannot audit."""
    audit_orders_store_url: str | None = None
    """The orders database (invariant 5); without it that invariant is not checked."""
    audit_inventory_schema: str = "inventory"
    """The event store's PostgreSQL schema (the inventory's ``event_store_schema``)."""
    audit_timeout_seconds: float = Field(300.0, gt=0)
    """An audit still running after this long is stopped and reported as failed."""
