"""The auditor as edge runs it: the ``stockflow audit`` command in a child process.

The auditor is independent of the services by design (it shares only the published storage
layouts), so edge does not import it: it runs the command against the stores the runners
name in its settings (``EDGE_AUDIT_INVENTORY_STORE_URL``, ``EDGE_AUDIT_ORDERS_STORE_URL``) and
reads the report the command writes with ``--json``. A child process also keeps the fold of a
long event log off edge's event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from stockflow.edge.domain.audit import AuditRun

__all__ = ["PROGRAM", "ProcessAuditor"]

PROGRAM: Final = (sys.executable, "-m", "stockflow")
"""The ``stockflow`` command of this interpreter."""


class ProcessAuditor:
    def __init__(
        self,
        *,
        inventory_store_url: str | None,
        orders_store_url: str | None,
        inventory_schema: str = "inventory",
        timeout: float = 300.0,
        program: Sequence[str] = PROGRAM,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inventory = inventory_store_url
        self._orders = orders_store_url
        self._schema = inventory_schema
        self._timeout = timeout
        self._program = tuple(program)
        self._clock = clock

    @property
    def configured(self) -> str | None:
        if self._inventory is None:
            return (
                "no event store to audit: set EDGE_AUDIT_INVENTORY_STORE_URL (stockflow up sets it)"
            )
        return None

    def arguments(self, report: Path) -> list[str]:
        assert self._inventory is not None
        args = [*self._program, "audit", "--event-store-url", self._inventory]
        args += ["--schema", self._schema, "--json", str(report)]
        if self._orders is not None:
            args += ["--orders-url", self._orders]
        return args

    async def audit(self) -> AuditRun:
        at, started = self._clock(), time.perf_counter()
        if (why := self.configured) is not None:
            return AuditRun.failed(at, 0.0, why)
        with tempfile.TemporaryDirectory(prefix="stockflow-audit-") as scratch:
            report = Path(scratch) / "report.json"
            try:
                code, stderr = await self._run(self.arguments(report))
            except TimeoutError:
                return AuditRun.failed(
                    at, time.perf_counter() - started, f"took longer than {self._timeout:g} s"
                )
            except OSError as error:
                return AuditRun.failed(at, 0.0, f"cannot start the auditor: {error}")
            seconds = time.perf_counter() - started
            if code in (0, 1) and report.exists():
                try:
                    return AuditRun.from_report(at, seconds, json.loads(report.read_text()))
                except ValueError:
                    return AuditRun.failed(
                        at, seconds, "the auditor wrote a report that is not JSON"
                    )
            lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
            return AuditRun.failed(at, seconds, lines[-1].strip() if lines else f"exit {code}")

    async def _run(self, args: Sequence[str]) -> tuple[int | None, bytes]:
        child = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            _, stderr = await asyncio.wait_for(child.communicate(), self._timeout)
        except BaseException:  # the timeout, or edge stopping: never leave the child behind
            child.kill()
            await child.wait()
            raise
        return child.returncode, stderr
