"""The one registry of stockflow's services: what ``up``, ``up --distributed`` and ``serve``
loop over. Adding a service is one entry here (see docs/adding-a-service.md).

Each service's bootstrap is imported when its spec is first asked for: ``stockflow serve
orders`` imports the orders service only (a ``serve`` process starts in about half the time
it took with every service imported), while :data:`SERVICES` imports them all.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Final

from stockflow.platform.spec import ServiceSpec

__all__ = ["NAMES", "SERVICES", "spec_named"]

NAMES: Final = ("profiles", "inventory", "orders", "notifications", "edge")
"""Every service, in start order (a service starts after the ones it calls); the spec of
``name`` is ``SPEC`` in ``stockflow.<name>.bootstrap``."""

SERVICES: tuple[ServiceSpec[Any], ...]
"""Every service's spec, in :data:`NAMES` order (imports every bootstrap on first use)."""


def spec_named(name: str) -> ServiceSpec[Any]:
    """The spec of service *name* (importing its bootstrap, and only that one).

    Raises:
        KeyError: no such service; the message lists the known ones.
    """
    if name not in NAMES:
        raise KeyError(f"unknown service {name!r}: choose one of {', '.join(NAMES)}")
    spec = importlib.import_module(f"stockflow.{name}.bootstrap").SPEC
    if not isinstance(spec, ServiceSpec) or spec.name != name:
        raise TypeError(f"stockflow.{name}.bootstrap.SPEC is not the spec of {name}: {spec!r}")
    return spec


@functools.cache
def _services() -> tuple[ServiceSpec[Any], ...]:
    return tuple(spec_named(name) for name in NAMES)


def __getattr__(attribute: str) -> tuple[ServiceSpec[Any], ...]:
    if attribute == "SERVICES":
        return _services()
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
