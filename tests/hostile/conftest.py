"""The hostile-user probes run against every service of the registry, as a real process.

Each service says here where its probes aim (a read route, a write route with a valid body, an
internal route); :func:`test_every_service_has_probes` fails when a service is added to the
registry without its entry, so no service escapes the suite.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stockflow.edge.adapters.tokens import issue_token
from stockflow.runtime.registry import SERVICES
from stockflow_kit.lifecycle import ServiceProcess

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
TOKEN = os.environ.get("STOCKFLOW_SERVICE_TOKEN", "test-service-credential")
MAX_IN_FLIGHT = 4
BODY_TIMEOUT = 1.5


@dataclass(frozen=True)
class Probes:
    """Where the probes aim at one service."""

    read: str
    write: str
    write_body: dict[str, Any]
    internal: str
    internal_body: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    """Its store in the test's directory: ``{dir}`` is replaced by it."""
    headers: dict[str, str] = field(default_factory=dict)
    """Sent with every write and internal probe: what a legitimate caller sends besides the
    body (for an internal-only service, the credential and the caller's identity)."""
    method: str = "POST"
    """The method of the write and internal probes (``PUT`` for a create-or-replace)."""
    bearer: str | None = None
    """The bearer token its guarded routes accept, when not the service credential (edge:
    a user's JWT); the ``internal`` probe then checks that guard instead."""
    companions: tuple[str, ...] = ()
    """Services of the registry it calls that the probes reach through it: each is started
    first (with its own probes' ``env``) and its URL given as ``<SERVICE>_<NAME>_URL``."""


JWT_SECRET = "hostile-probe-jwt-secret-hostile-probe-jwt-secret"
STAFF_JWT = issue_token(JWT_SECRET, user="prober", role="staff", ttl_seconds=4 * 3600)

PROBES: dict[str, Probes] = {
    # Every profiles route is internal; a profile is written (PUT) by its owner.
    "profiles": Probes(
        read="/profiles/prober",
        write="/profiles/prober",
        write_body={"name": "Probe", "email": "probe@example.com"},
        internal="/profiles/prober",
        internal_body={"name": "Probe", "email": "probe@example.com"},
        env={"PROFILES_DATABASE_URL": "sqlite:///{dir}/profiles.sqlite3"},
        headers={"Authorization": f"Bearer {TOKEN}", "X-Stockflow-User": "prober"},
        method="PUT",
    ),
    "inventory": Probes(
        read="/inventory/SKU-1",
        write="/inventory/SKU-1/receipts",
        write_body={"qty": 1, "reference": "probe"},
        internal="/internal/reservations",
        internal_body={"order_id": "o-1", "lines": [{"sku": "SKU-1", "qty": 1}]},
        env={"INVENTORY_EVENT_STORE_URL": "sqlite:///{dir}/inventory.sqlite3"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ),
    # Every orders route is internal: the probes come with the credential and an identity.
    "orders": Probes(
        read="/orders/o-1",
        write="/orders",
        write_body={"lines": [{"sku": "SKU-1", "qty": 1}]},
        internal="/orders",
        internal_body={"lines": [{"sku": "SKU-1", "qty": 1}]},
        env={"ORDERS_DATABASE_URL": "sqlite:///{dir}/orders.sqlite3"},
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "X-Stockflow-User": "prober",
            "Idempotency-Key": "probe-key",
        },
    ),
    # Every notifications route is internal; the webhook routes are for staff, and the probe's
    # target is allowlisted (nothing private is, by default).
    "notifications": Probes(
        read="/notifications",
        write="/webhooks",
        write_body={"url": "http://127.0.0.1:9/hook", "events": ["OrderPlaced"]},
        internal="/webhooks",
        internal_body={"url": "http://127.0.0.1:9/hook", "events": ["OrderPlaced"]},
        env={
            "NOTIFICATIONS_DATABASE_URL": "sqlite:///{dir}/notifications.sqlite3",
            "NOTIFICATIONS_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]',
        },
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "X-Stockflow-User": "prober",
            "X-Stockflow-Role": "staff",
        },
    ),
    # The public entry: its guard is a user's JWT; a staff receipt goes through to a real
    # inventory, so the probes see edge's own answers and what it composes.
    "edge": Probes(
        read="/inventory/SKU-1",
        write="/inventory/SKU-1/receipts",
        write_body={"qty": 1, "reference": "probe"},
        internal="/inventory/SKU-1/receipts",
        internal_body={"qty": 1, "reference": "probe"},
        env={"EDGE_JWT_SECRET": JWT_SECRET, "EDGE_RATE_LIMIT": "1000/second"},
        headers={"Authorization": f"Bearer {STAFF_JWT}"},
        bearer=STAFF_JWT,
        companions=("inventory",),
    ),
}


@dataclass
class Target:
    """One running service under probe."""

    name: str
    probes: Probes
    process: ServiceProcess

    @property
    def url(self) -> str:
        return self.process.base_url


@pytest.fixture(scope="module", params=[spec.name for spec in SERVICES])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """One process per service for the whole module (the probes leave it as they found it)."""
    name: str = request.param
    spec = next(s for s in SERVICES if s.name == name)
    probes = PROBES[name]
    directory = tmp_path_factory.mktemp(f"hostile-{name}")
    shared = {
        "BUS_URL": f"sqlite:///{directory / 'bus.sqlite3'}",
        "STOCKFLOW_SERVICE_TOKEN": TOKEN,
        "STOCKFLOW_LOG_FORMAT": "json",
    }
    env = {key: value.format(dir=directory) for key, value in probes.env.items()}
    env |= shared | {
        spec.env_name("max_in_flight"): str(MAX_IN_FLIGHT),
        spec.env_name("body_timeout_seconds"): str(BODY_TIMEOUT),
        spec.env_name("max_body_bytes"): "4096",
    }
    companions = []
    for companion in probes.companions:
        other = next(s for s in SERVICES if s.name == companion)
        companion_env = {k: v.format(dir=directory) for k, v in PROBES[companion].env.items()}
        companions.append(
            ServiceProcess(
                [STOCKFLOW, "serve", companion],
                name=companion,
                env=companion_env | shared,
                port_env=other.env_name("port"),
                log=directory / f"{companion}.log",
            )
        )
    process = None
    try:
        for companion_process in companions:
            companion_process.start()
            asyncio.run(companion_process.wait_ready(within=60))
            env[spec.env_name(f"{companion_process.name}_url")] = companion_process.base_url
        process = ServiceProcess(
            [STOCKFLOW, "serve", name],
            name=name,
            env=env,
            port_env=spec.env_name("port"),
            log=directory / f"{name}.log",
        )
        process.start()
        asyncio.run(process.wait_ready(within=60))
        yield Target(name, probes, process)
    finally:
        if process is not None:
            process.terminate()
        for companion_process in reversed(companions):
            companion_process.terminate()
