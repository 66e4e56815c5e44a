"""Fixtures for the lifecycle tests."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeAlias

import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.lifecycle import ServiceProcess

# observability.metrics caches instruments by id(registry): keeping every test registry alive
# for the session stops a later registry from reusing an id (see resilience/conftest.py).
_registries: list[CollectorRegistry] = []


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh Prometheus registry for this test."""
    fresh = CollectorRegistry()
    _registries.append(fresh)
    return fresh


Spawn: TypeAlias = Callable[..., ServiceProcess]
"""``child(name="child", **env)``: a ``child_server.py`` process, not started yet."""

CHILD = str(Path(__file__).with_name("child_server.py"))


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Spawn]:
    """Makes ``child_server.py`` processes (log in *tmp_path*); kills those left alive after
    the test, whatever happened (a child that ignores SIGTERM outlives even its parent)."""
    made: list[ServiceProcess] = []

    def spawn(name: str = "child", **env: str) -> ServiceProcess:
        process = ServiceProcess(
            [sys.executable, CHILD],
            name=name,
            env=env,
            port_env="PORT",
            log=tmp_path / f"{name}.log",
        )
        made.append(process)
        return process

    yield spawn
    for process in made:
        process.kill()
