"""Demo data for a fresh ``stockflow up``: a few SKUs with stock and two users' profiles.

Seeding goes through the services' own HTTP APIs (with the service credential), never their
databases, and only adds what is missing: a SKU that has stock records is left alone and an
existing profile is not replaced, so restarting ``stockflow up`` on the same data dir changes
nothing. Receipts carry an ``Idempotency-Key`` per SKU, so a seed interrupted half-way and run
again cannot receive twice. ``stockflow up --no-seed`` skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import httpx
import structlog

from stockflow.contracts.identity import ROLE_HEADER, USER_HEADER

__all__ = ["DEMO_STOCK", "DEMO_USERS", "DemoUser", "seed_demo"]

_log = structlog.get_logger("stockflow.runtime")

DEMO_STOCK: Final[Mapping[str, int]] = {
    "SKU-1": 100,
    "SKU-2": 50,
    "SKU-3": 20,
    "SKU-LOW": 3,
}
"""SKU -> units received on a fresh system (``SKU-LOW`` is there to run out)."""


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    role: str
    name: str
    email: str


DEMO_USERS: Final = (
    DemoUser("alice", "customer", "Alice Example", "alice@example.com"),
    DemoUser("bob", "customer", "Bob Example", "bob@example.com"),
    DemoUser("sam", "staff", "Sam Staff", "sam@example.com"),
)


async def seed_demo(
    urls: Mapping[str, str], token: str, *, announce: Callable[[str], None]
) -> None:
    """Add the demo profiles and stock that are missing, through the services at *urls*
    (``{service: base URL}``; a service that is not there is skipped). The stock comes last:
    once it is visible, the seed is done but for its announcement."""
    auth = {"Authorization": f"Bearer {token}"}
    received, created = [], []
    async with httpx.AsyncClient(timeout=10.0, headers=auth) as client:
        if "profiles" in urls:
            for user in DEMO_USERS:
                identity = {USER_HEADER: user.user_id, ROLE_HEADER: "customer"}
                url = f"{urls['profiles']}/profiles/{user.user_id}"
                if (await client.get(url, headers=identity)).status_code != 404:
                    continue
                response = await client.put(
                    url, json={"name": user.name, "email": user.email}, headers=identity
                )
                response.raise_for_status()
                created.append(user.user_id)
        if "inventory" in urls:
            for sku, qty in DEMO_STOCK.items():
                base = f"{urls['inventory']}/inventory/{sku}"
                if (await client.get(base)).status_code != 404:
                    continue
                response = await client.post(
                    f"{base}/receipts",
                    json={"qty": qty, "reference": "demo seed"},
                    headers={"Idempotency-Key": f"demo-seed-{sku}"},
                )
                response.raise_for_status()
                received.append(f"{sku} x{qty}")
    if received or created:
        _log.info("runtime.demo_seeded", stock=received, profiles=created)
        announce(
            "demo data: "
            + ", ".join(
                part
                for part in (
                    f"stock {', '.join(received)}" if received else "",
                    f"profiles {', '.join(created)}" if created else "",
                )
                if part
            )
        )
    users = ", ".join(f"{u.user_id} ({u.role})" for u in DEMO_USERS)
    announce(f"demo users: {users}; a token: stockflow token --user alice --role customer")
