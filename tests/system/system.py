"""The whole system as users run it: ``stockflow up`` (embedded, one process) or ``stockflow up
--distributed`` (one supervised process per service on PostgreSQL + NATS JetStream), on a free
block of five ports and a temporary data dir, reached through edge only.

:class:`System` starts it, mints tokens with the data dir's JWT secret (what ``stockflow
token`` does), finds a service's process in the distributed deployment (to SIGKILL or SIGSTOP
it), stops it with SIGTERM (graceful shutdown) and runs the audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from stockflow.edge.adapters.tokens import issue_token
from stockflow_kit.lifecycle import free_port_block

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
SERVICES = ("edge", "profiles", "inventory", "orders", "notifications")
TEST_ENV = {
    "ORDERS_SAGA_TIMEOUT_SECONDS": "5",
    "ORDERS_SAGA_CHECK_SECONDS": "0.2",
    "ORDERS_BATCH_WAIT": "0.02",
    "INVENTORY_BATCH_WAIT": "0.02",
    "NOTIFICATIONS_BATCH_WAIT": "0.02",
    "STOCKFLOW_LOG_FORMAT": "json",
    "NOTIFICATIONS_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]',
    "NOTIFICATIONS_WEBHOOK_BACKOFF_INITIAL": "0.2",
    "EDGE_RATE_LIMIT": "100000/second",
}


FAST_BREAKER: dict[str, str] = {
    "EDGE_DOWNSTREAM_TIMEOUT_SECONDS": "0.5",
    "EDGE_PROFILE_DEADLINE_SECONDS": "1.5",
    "EDGE_BREAKER_RESET_SECONDS": "2",
}
"""Edge's settings for a test that stops profiles: its breaker trips within a second of the
stop, and is tried again 2 s later (the defaults take 30 s)."""


@dataclass
class System:
    mode: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    audit_args: list[str] = field(default_factory=list)
    port_base: int = field(default_factory=lambda: free_port_block(len(SERVICES)))
    bus_url: str = ""
    database_url: str = ""
    run: str = ""
    """Distributed: the run's id in its database names and stream prefix."""
    """``up --distributed``'s ``--database-url`` (each service's database is next to it)."""
    process: subprocess.Popen[bytes] | None = None
    attached_pid: int = 0
    """The ``stockflow up`` process of a system another process started (:meth:`attach`)."""

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "up.log"

    def url(self, service: str = "edge") -> str:
        return f"http://127.0.0.1:{self.port_base + SERVICES.index(service)}"

    def token(self, user: str, role: str = "customer") -> str:
        secret = (self.data_dir / "jwt-secret").read_text().strip()
        return issue_token(secret, user=user, role=role)

    def auth(self, user: str, role: str = "customer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, role)}"}

    def command(self) -> list[str]:
        args = [STOCKFLOW, "up", "--data-dir", str(self.data_dir)]
        args += ["--port-base", str(self.port_base), *self.extra_args]
        return args

    async def start(self, *, within: float = 120.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - starts at once, waits for nothing
                self.command(),
                env={**os.environ, **TEST_ENV, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await self.wait_ready(within=within)

    async def wait_ready(self, *, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2, trust_env=False) as http:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise AssertionError(
                        f"stockflow up exited {self.process.returncode}:\n{self.tail()}"
                    )
                ready = 0
                for service in SERVICES:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"{self.url(service)}/readyz")).status_code == 200:
                            ready += 1
                if ready == len(SERVICES) and "demo users:" in self.tail(10**9):
                    return  # and the demo data is in (announced after seeding)
                if time.monotonic() > deadline:
                    raise AssertionError(f"not ready within {within} s:\n{self.tail()}")
                await asyncio.sleep(0.2)

    def tail(self, chars: int = 6000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def describe(self) -> dict[str, Any]:
        """What another process needs to reach this started system (see :meth:`attach`)."""
        assert self.process is not None
        return {
            "mode": self.mode,
            "root": str(self.root),
            "port_base": self.port_base,
            "bus_url": self.bus_url,
            "database_url": self.database_url,
            "audit_args": self.audit_args,
            "pid": self.process.pid,
        }

    @classmethod
    def attach(cls, described: dict[str, Any]) -> System:
        """The system :meth:`describe` described, as seen from another process (the chaos
        experiments'): it can be probed, its services signalled and audited, not stopped."""
        return cls(
            described["mode"],
            Path(described["root"]),
            audit_args=list(described["audit_args"]),
            port_base=described["port_base"],
            bus_url=described["bus_url"],
            database_url=described["database_url"],
            attached_pid=described["pid"],
        )

    def child(self, service: str) -> psutil.Process:
        """The ``stockflow serve <service>`` process of the distributed deployment."""
        pid = self.process.pid if self.process is not None else self.attached_pid
        assert pid, "the system is not started"
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                command = child.cmdline()
                if "serve" in command and command[-1] == service:
                    return child
        raise AssertionError(f"no process serves {service}")

    async def stop(self, *, within: float = 60.0) -> int:
        """SIGTERM (graceful shutdown); return the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + within
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"stockflow up did not stop within {within} s:\n{self.tail()}")
            await asyncio.sleep(0.1)
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def run_audit(self, report_file: Path) -> subprocess.CompletedProcess[str]:
        """One ``stockflow audit`` of this system's stores, its JSON report to *report_file*."""
        return subprocess.run(
            [STOCKFLOW, "audit", *self.audit_args, "--json", str(report_file)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def audit(self, *, quiet_within: float = 0.0) -> dict[str, Any]:
        """Run ``stockflow audit``: every invariant must hold. The invariants are those of a
        quiet system, so with *quiet_within* a broken audit is run again (every 2 s) for up to
        that many seconds while compensations still travel over the bus (a timed-out order's
        release, say); what is still broken then fails."""
        report_file = self.root / "audit.json"
        deadline = time.monotonic() + quiet_within
        while True:
            result = self.run_audit(report_file)
            if result.returncode != 1 or time.monotonic() >= deadline:
                break
            time.sleep(2)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        report: dict[str, Any] = json.loads(report_file.read_text())
        return report

    def server_errors(self) -> list[str]:
        """Log lines of requests answered with a 5xx (none may be)."""
        return [line for line in self.tail(10**9).splitlines() if '"status": 5' in line]


def embedded(root: Path) -> System:
    system = System("embedded", root)
    system.bus_url = f"sqlite:///{system.data_dir / 'bus.sqlite3'}"
    system.audit_args = ["--data-dir", str(system.data_dir)]
    return system


def _distributed(root: Path, postgres_url: str, nats_url: str) -> System:
    """A distributed :class:`System` (not started) on databases ``sys_<run>_<service>`` and a
    stream prefix of its own; :func:`_remove_distributed` removes both."""
    run = uuid.uuid4().hex[:8]
    base = postgres_url.rsplit("/", 1)[0] + f"/sys_{run}"
    system = System("distributed", root)
    system.run = run
    # *nats_url* may list several servers and carry options (a cluster's ``?replicas=3``).
    system.bus_url = f"{nats_url}{'&' if '?' in nats_url else '?'}prefix=s{run}"
    system.database_url = base
    system.extra_args = [
        "--distributed",
        "--database-url",
        base,
        "--nats-url",
        system.bus_url,
    ]
    system.audit_args = [
        "--event-store-url",
        f"{base}_inventory",
        "--orders-url",
        f"{base}_orders",
    ]
    return system


async def _remove_distributed(system: System, postgres_url: str, nats_url: str) -> None:
    from tests.servers import admin_execute, delete_streams

    system.kill()
    first_server = nats_url.split("?")[0].split(",")[0]
    await delete_streams(first_server, prefix=f"s{system.run}_")
    for service in SERVICES:
        await admin_execute(
            postgres_url, f'DROP DATABASE IF EXISTS "sys_{system.run}_{service}" WITH (FORCE)'
        )


@contextlib.asynccontextmanager
async def distributed(root: Path, postgres_url: str, nats_url: str) -> AsyncIterator[System]:
    """``up --distributed`` on databases ``sys_<run>_<service>`` and a stream prefix of its own;
    both removed afterwards (in an async test or a runner's own loop; for a sync fixture use
    :func:`running_distributed`)."""
    system = _distributed(root, postgres_url, nats_url)
    try:
        yield system
    finally:
        await _remove_distributed(system, postgres_url, nats_url)


def running_distributed(
    root: Path, postgres_url: str, nats_url: str, env: dict[str, str] | None = None
) -> Iterator[System]:
    """A sync fixture's body: the distributed system (with *env* on top of the test settings)
    started, yielded, stopped, and its databases and streams removed.

    Not ``asyncio.run(distributed(...).__aenter__())``: that loop's shutdown finalises the
    context at once, so its cleanup ran before the system started and never after (databases
    leaked)."""
    system = _distributed(root, postgres_url, nats_url)
    system.env = dict(env or {})
    try:
        yield from running(system)
    finally:
        asyncio.run(_remove_distributed(system, postgres_url, nats_url))


def running(system: System) -> Iterator[System]:
    """Start *system*, yield it, stop it (a fixture's body): it must exit 0 on SIGTERM."""
    try:
        asyncio.run(system.start())
        yield system
    finally:
        code = asyncio.run(system.stop())
    assert code == 0, f"stockflow up exited {code} on SIGTERM:\n{system.tail()}"
