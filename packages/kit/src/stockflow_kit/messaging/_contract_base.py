"""Fixtures and helpers of the bus contract suite (see :mod:`stockflow_kit.messaging.testing`)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
from prometheus_client import REGISTRY

from stockflow_kit.messaging.bus import (
    Bus,
    ConsumerConfig,
    Delivery,
    Subscription,
)
from stockflow_kit.messaging.envelope import Envelope
from stockflow_kit.messaging.factory import make_bus

__all__ = ["ContractBase", "counted", "drain", "make_envelopes"]


def make_envelopes(count: int, *, subject: str = "sku-1", start: int = 1) -> list[Envelope]:
    """Return *count* envelopes of type ``ContractTested`` with sequences from *start*."""
    return [
        Envelope.new("ContractTested", {"n": n}, source="contract", subject=subject, sequence=n)
        for n in range(start, start + count)
    ]


async def drain(sub: Subscription, expected: int, *, batch: int = 100) -> list[Delivery]:
    """Fetch (and ack) until *expected* deliveries arrived or a fetch comes back empty."""
    got: list[Delivery] = []
    while len(got) < expected:
        deliveries = await sub.fetch(batch, max_wait=1.0)
        if not deliveries:
            break
        await sub.ack(deliveries)
        got.extend(deliveries)
    return got


def counted(topic: str, subscription: str, outcome: str) -> float:
    """Read ``messaging_messages_total`` for one label set from the default registry."""
    labels = {"topic": topic, "subscription": subscription, "outcome": outcome}
    return REGISTRY.get_sample_value("messaging_messages_total", labels) or 0.0


class ContractBase:
    """Capability flags, fixtures and helpers shared by the contract cases."""

    supports_subprocess: ClassVar[bool] = True
    supports_server_restart: ClassVar[bool] = False
    no_server_restart_reason: ClassVar[str] = (
        "this backend keeps nothing across a restart of its storage"
    )
    ack_wait: ClassVar[float] = 0.4
    backpressure_messages: ClassVar[int] = 20_000

    @pytest.fixture
    def bus_url(self) -> str:
        """The URL of fresh storage for one test; subclasses must override this fixture."""
        raise NotImplementedError

    def open_bus(self, url: str) -> Bus:
        """Return an unstarted bus on the storage named by *url*."""
        return make_bus(url)

    async def restart_server(self) -> None:
        """Restart the storage behind the URL while no bus is open."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def started_bus(self, url: str) -> AsyncIterator[Bus]:
        """Open, start and finally close a bus on *url*."""
        bus = self.open_bus(url)
        await bus.start()
        try:
            yield bus
        finally:
            await bus.close()

    @pytest.fixture
    async def bus(self, bus_url: str) -> AsyncIterator[Bus]:
        """A started bus on ``bus_url``, closed after the test."""
        async with self.started_bus(bus_url) as bus:
            yield bus

    @pytest.fixture
    def stream(self) -> str:
        """A stream name no other test uses."""
        return f"ct{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def topic(self, stream: str) -> str:
        """``"<stream>.events"``."""
        return f"{stream}.events"

    def config(self, max_deliver: int = 5) -> ConsumerConfig:
        """A consumer config with the suite's ``ack_wait``."""
        return ConsumerConfig(ack_wait=self.ack_wait, max_deliver=max_deliver)
