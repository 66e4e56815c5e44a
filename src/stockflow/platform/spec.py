"""What a service declares to the platform: its :class:`ServiceSpec`, and the :class:`Service`
its ``build`` returns.

The runtime keeps one registry of specs (``stockflow.runtime.registry``); ``stockflow up``,
``up --distributed`` and ``serve`` loop over it, so adding a service is one new entry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from starlette.types import ASGIApp

from stockflow.platform.settings import ServiceSettings
from stockflow.platform.startup import StartupError
from stockflow_kit.messaging import Bus

__all__ = ["Build", "Service", "ServiceSpec"]

S = TypeVar("S", bound=ServiceSettings)
S_contra = TypeVar("S_contra", bound=ServiceSettings, contravariant=True)


class Service(Protocol):
    """One built service: its ASGI app and its lifecycle (nothing runs until :meth:`start`)."""

    @property
    def app(self) -> ASGIApp: ...

    @property
    def registry(self) -> CollectorRegistry:
        """Where its metrics live (what its ``/metrics`` serves)."""
        ...

    async def start(self) -> None:
        """Open stores, load state, start background work; raise if a dependency is missing."""
        ...

    async def stop(self) -> None:
        """Stop background work (settling what is in hand), then close stores. Idempotent."""
        ...

    async def readiness(self) -> str | None:
        """``None`` when ready to serve, else why not (the body of the 503 ``/readyz``)."""
        ...


class Build(Protocol[S_contra]):
    """``build(settings, *, bus)``: wire one service; the bus is started and closed by the caller."""

    def __call__(self, settings: S_contra, *, bus: Bus) -> Service: ...


@dataclass(frozen=True)
class ServiceSpec(Generic[S]):
    """A service as the runners see it.

    Attributes:
        name: The service's name (``inventory``): the ``serve`` argument, the log ``service``.
        settings: Its settings class (a :class:`ServiceSettings` subclass).
        build: Its composition root.
        port_offset: It listens on ``port_base + port_offset`` (API.md: edge 0 … notifications 4).
        store_field: The settings field holding its own database URL (``event_store_url``),
            if it has one: embedded, a SQLite file ``<data dir>/<name>.sqlite3``; distributed,
            its own PostgreSQL database ``<base>_<name>``.
        summary: One line for ``stockflow serve --help`` and the start-up banner.
        calls: The services it calls over HTTP, by name. For each, the runners set its
            settings field ``<name>_url`` (``orders_url``) to that service's URL, unless the
            environment sets it (``EDGE_ORDERS_URL``): see :meth:`call_urls`.
        audits: The services whose stores it hands to the auditor, by name. For each, the
            runners set its settings field ``audit_<name>_store_url`` to that service's store
            URL, unless the environment sets it: see :meth:`audit_store_urls`.
    """

    name: str
    settings: type[S]
    build: Build[S]
    port_offset: int
    store_field: str | None = None
    summary: str = ""
    calls: tuple[str, ...] = ()
    audits: tuple[str, ...] = ()

    @property
    def env_prefix(self) -> str:
        prefix = self.settings.model_config.get("env_prefix", "")
        return str(prefix)

    def env_name(self, field: str) -> str:
        """The environment variable of one of its settings fields (``INVENTORY_PORT``)."""
        return f"{self.env_prefix}{field.upper()}"

    def load_settings(self, **values: Any) -> S:
        """Its settings from the environment, with *values* on top.

        Raises:
            StartupError: a value does not fit; the message names each variable.
        """
        try:
            return self.settings(**values)
        except ValidationError as error:
            problems = "; ".join(
                f"{self.env_name(str(e['loc'][0])) if e['loc'] else self.env_prefix}: {e['msg']}"
                for e in error.errors()
            )
            raise StartupError(f"{self.name}: invalid settings: {problems}") from None

    def call_urls(self, url_of: Mapping[str, str]) -> dict[str, str]:
        """The ``<callee>_url`` settings values of the services it :attr:`calls`, from
        *url_of* (``{service: base URL}``), for those the environment does not set
        (``EDGE_ORDERS_URL`` wins) and that *url_of* knows (the others keep their default)."""
        return self._unless_set("{}_url", self.calls, url_of)

    def audit_store_urls(self, store_of: Mapping[str, str]) -> dict[str, str]:
        """The ``audit_<name>_store_url`` settings values of the services it :attr:`audits`,
        from *store_of* (``{service: store URL}``), for those the environment does not set."""
        return self._unless_set("audit_{}_store_url", self.audits, store_of)

    def _unless_set(
        self, pattern: str, names: tuple[str, ...], value_of: Mapping[str, str]
    ) -> dict[str, str]:
        """``{pattern.format(name): value_of[name]}`` for each of *names* that *value_of*
        knows and whose variable the environment does not set."""
        fields = {pattern.format(name): name for name in names if name in value_of}
        return {f: value_of[n] for f, n in fields.items() if self.env_name(f) not in os.environ}

    def embedded_store_url(self, data_dir: Path) -> str:
        return f"sqlite:///{data_dir / f'{self.name}.sqlite3'}"

    def distributed_store_url(self, database_url: str) -> str:
        """Its own database next to *database_url*: ``…/stockflow`` gives ``…/stockflow_<name>``."""
        base, _, query = database_url.partition("?")
        head, _, database = base.rstrip("/").rpartition("/")
        url = f"{head}/{database or 'stockflow'}_{self.name}"
        return f"{url}?{query}" if query else url
