"""Settings of the profiles service. Defaults are the embedded deployment.

Constructed only by the runtime (from the environment or flags) and passed down; nothing else
reads the environment. The fields every service has come from
:class:`~stockflow.platform.settings.ServiceSettings`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from stockflow.platform.settings import ServiceSettings, service_config

__all__ = ["ProfilesSettings"]


class ProfilesSettings(ServiceSettings):
    """Configuration of one profiles process: ``PROFILES_<FIELD>`` (shared fields also read
    ``STOCKFLOW_<FIELD>``, the bus URL also ``BUS_URL``)."""

    model_config = service_config("PROFILES_")
    service_name: ClassVar[str] = "profiles"

    port: int = Field(8001, ge=0, le=65_535)
    database_url: str = "sqlite:///data/profiles.sqlite3"
    """``memory://`` (a throwaway file), ``sqlite:///<path>`` or ``postgresql://…``."""
    page_limit: int = Field(100, ge=1, le=1000)
    """The largest page ``GET /profiles`` returns."""
