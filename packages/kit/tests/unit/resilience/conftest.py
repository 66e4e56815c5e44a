"""Fixtures for the resilience tests."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.resilience.testing import ManualClock

# observability.metrics caches instruments by id(registry): if a test's registry were
# garbage-collected, a later registry could get the same id and be handed stale instruments
# registered elsewhere. Keeping every test registry alive for the session rules that out.
_registries: list[CollectorRegistry] = []


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh Prometheus registry for this test."""
    fresh = CollectorRegistry()
    _registries.append(fresh)
    return fresh


@pytest.fixture
def clock() -> ManualClock:
    """A clock at 1000.0 that moves only when the test advances it."""
    return ManualClock(1000.0)
