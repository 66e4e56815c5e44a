"""The bus contract, run against the embedded SQLite log (inline and on a worker thread)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockflow_kit.messaging.testing import BusContract


class TestSqliteLogBus(BusContract):
    supports_subprocess = True
    supports_server_restart = True

    @pytest.fixture
    def bus_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'bus.sqlite3'}"

    async def restart_server(self) -> None:
        """Nothing runs between buses: reopening the file is the restart."""


class TestSqliteLogBusOffloaded(TestSqliteLogBus):
    @pytest.fixture
    def bus_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'bus.sqlite3'}?offload=1"
