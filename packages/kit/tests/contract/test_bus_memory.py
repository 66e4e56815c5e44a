"""The bus contract, run against the in-memory bus."""

from __future__ import annotations

import pytest

from stockflow_kit.messaging.bus import Bus
from stockflow_kit.messaging.memory import InMemoryBroker, InMemoryBus
from stockflow_kit.messaging.testing import BusContract


class TestInMemoryBus(BusContract):
    supports_subprocess = False
    supports_server_restart = False

    @pytest.fixture
    def bus_url(self) -> str:
        self.broker = InMemoryBroker()
        return "memory://"

    def open_bus(self, url: str) -> Bus:
        return InMemoryBus(broker=self.broker)
