"""Fixtures for the lifecycle tests."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

# observability.metrics caches instruments by id(registry): keeping every test registry alive
# for the session stops a later registry from reusing an id (see resilience/conftest.py).
_registries: list[CollectorRegistry] = []


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh Prometheus registry for this test."""
    fresh = CollectorRegistry()
    _registries.append(fresh)
    return fresh
