"""``ServiceSpec.calls``: the runners tell a caller where its callees listen;
``ServiceSpec.audits``: where the stores it audits are; and the data dir's JWT secret, which
the embedded and distributed deployments give to edge."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockflow.edge.bootstrap import SPEC as EDGE
from stockflow.inventory.bootstrap import SPEC as INVENTORY
from stockflow.orders.bootstrap import SPEC as ORDERS
from stockflow.platform.data_dir import DataDir
from stockflow.runtime.embedded import distributed_env, embedded_units

SERVICES = (INVENTORY, ORDERS, EDGE)


def test_a_caller_gets_the_url_of_every_callee_the_runner_knows() -> None:
    urls = {"orders": "http://o:1", "inventory": "http://i:2", "other": "http://x:3"}
    assert EDGE.call_urls(urls) == {"orders_url": "http://o:1", "inventory_url": "http://i:2"}
    assert INVENTORY.call_urls(urls) == {}


def test_the_environment_wins_over_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_ORDERS_URL", "http://elsewhere:9")
    assert "orders_url" not in EDGE.call_urls({"orders": "http://o:1"})
    monkeypatch.setenv("EDGE_AUDIT_ORDERS_STORE_URL", "postgresql://elsewhere/orders")
    stores = {"orders": "sqlite:///o", "inventory": "sqlite:///i", "profiles": "sqlite:///p"}
    assert EDGE.audit_store_urls(stores) == {"audit_inventory_store_url": "sqlite:///i"}
    assert INVENTORY.audit_store_urls(stores) == {}


def test_embedded_edge_is_given_its_callees_on_loopback_and_the_jwt_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGE_JWT_SECRET", raising=False)
    units = embedded_units(
        tmp_path,
        port_base=9100,
        host="0.0.0.0",  # where they listen; they call each other on loopback
        token="t",
        jwt_secret="jwt-secret-value",
        services=SERVICES,
    )
    edge = next(u.settings for u in units if u.name == "edge")
    assert (edge.port, edge.inventory_url, edge.orders_url) == (  # type: ignore[attr-defined]
        9100,
        "http://127.0.0.1:9102",
        "http://127.0.0.1:9103",
    )
    assert edge.profiles_url == "http://127.0.0.1:8001"  # type: ignore[attr-defined]
    assert edge.jwt_secret.get_secret_value() == "jwt-secret-value"  # type: ignore[attr-defined]
    inventory = next(u.settings for u in units if u.name == "inventory")
    assert edge.audit_inventory_store_url == inventory.event_store_url  # type: ignore[attr-defined]
    assert edge.audit_orders_store_url == f"sqlite:///{tmp_path / 'orders.sqlite3'}"  # type: ignore[attr-defined]


def test_distributed_edge_gets_them_in_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_JWT_SECRET", raising=False)
    monkeypatch.delenv("EDGE_ORDERS_URL", raising=False)
    monkeypatch.delenv("EDGE_RATE_LIMIT_STORAGE_URL", raising=False)
    env = distributed_env(
        EDGE,
        database_url="postgresql://db/stockflow",
        bus_url="nats://bus:4222",
        port_base=9200,
        token="t",
        jwt_secret="s",
        services=SERVICES,
        redis_url="redis://cache:6379",
    )
    assert env["EDGE_RATE_LIMIT_STORAGE_URL"] == "redis://cache:6379"  # replicas share limits
    assert env["EDGE_ORDERS_URL"] == "http://127.0.0.1:9203"
    assert env["EDGE_INVENTORY_URL"] == "http://127.0.0.1:9202"
    assert env["EDGE_JWT_SECRET"] == "s"
    assert env["EDGE_AUDIT_INVENTORY_STORE_URL"] == "postgresql://db/stockflow_inventory"
    assert env["EDGE_AUDIT_ORDERS_STORE_URL"] == "postgresql://db/stockflow_orders"
    inventory = distributed_env(
        INVENTORY,
        database_url="postgresql://db/stockflow",
        bus_url="nats://bus:4222",
        port_base=9200,
        token="t",
        jwt_secret="s",
        services=SERVICES,
        redis_url="redis://cache:6379",
    )
    assert not any("JWT" in key or key.startswith("EDGE_") for key in inventory)


def test_the_jwt_secret_is_generated_once_private_and_readable_without_the_lock(
    tmp_path: Path,
) -> None:
    held = DataDir.open(tmp_path)
    try:
        first = held.jwt_secret()
        assert len(first) >= 64
        assert oct((tmp_path / "jwt-secret").stat().st_mode)[-3:] == "600"
        assert DataDir(tmp_path).jwt_secret() == first  # another process, while up holds it
        assert first != held.service_token()
    finally:
        held.release()
