"""The one registry of stockflow's services: what ``up``, ``up --distributed`` and ``serve``
loop over. Adding a service is one entry here (see docs/adding-a-service.md)."""

from __future__ import annotations

from typing import Any, Final

from stockflow.edge.bootstrap import SPEC as EDGE
from stockflow.inventory.bootstrap import SPEC as INVENTORY
from stockflow.notifications.bootstrap import SPEC as NOTIFICATIONS
from stockflow.orders.bootstrap import SPEC as ORDERS
from stockflow.platform.spec import ServiceSpec
from stockflow.profiles.bootstrap import SPEC as PROFILES

__all__ = ["SERVICES", "spec_named"]

SERVICES: Final[tuple[ServiceSpec[Any], ...]] = (PROFILES, INVENTORY, ORDERS, NOTIFICATIONS, EDGE)
"""Every service, in start order (a service starts after the ones it calls)."""


def spec_named(name: str) -> ServiceSpec[Any]:
    """The spec of service *name*.

    Raises:
        KeyError: no such service; the message lists the known ones.
    """
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown service {name!r}: choose one of {', '.join(s.name for s in SERVICES)}")
