"""The console's audit: at most one run at a time, its last result kept for the page.

A staff member presses the button (``POST /console/audit``); :meth:`ConsoleAudit.start` starts
the :class:`~stockflow.edge.service_layer.ports.Auditor` in the background unless one is
running, and every snapshot of the console carries :meth:`public_json` (the verdict) and, for
staff, :meth:`staff_json` (each check).
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import structlog

from stockflow.edge.domain.audit import AuditRun
from stockflow.edge.service_layer.ports import Auditor

__all__ = ["AuditStart", "ConsoleAudit"]

_log = structlog.get_logger("stockflow.edge.console")


class AuditStart(enum.Enum):
    STARTED = "started"
    RUNNING = "running"
    """One was running already: that one's result will show."""
    UNCONFIGURED = "unconfigured"


class ConsoleAudit:
    def __init__(self, auditor: Auditor) -> None:
        self._auditor = auditor
        self._task: asyncio.Task[None] | None = None
        self.last: AuditRun | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, *, by: str) -> AuditStart:
        if self._auditor.configured is not None:
            return AuditStart.UNCONFIGURED
        if self.running:
            return AuditStart.RUNNING
        _log.info("edge.audit_started", by=by)
        self._task = asyncio.create_task(self._run(by), name="edge-console-audit")
        return AuditStart.STARTED

    async def _run(self, by: str) -> None:
        run = await self._auditor.audit()
        self.last = run
        report = _log.info if run.ok else _log.warning
        report(
            "edge.audit_finished",
            by=by,
            ok=run.ok,
            violations=run.violations,
            seconds=round(run.seconds, 3),
            error=run.error,
        )

    async def wait(self) -> None:
        """Until the running audit (if any) has finished (tests, shutdown)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def public_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "unavailable": self._auditor.configured,
            "last": self.last.public_json() if self.last else None,
        }

    def staff_json(self) -> dict[str, Any]:
        return self.last.staff_json() if self.last else {"checks": []}
