"""The console's audit: one run at a time, the verdict for everyone and each check for staff
(an in-memory auditor here; the real one, the ``stockflow audit`` command, is in
tests/edge/component/test_edge_console_audit.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from stockflow.edge.domain.audit import EXAMPLES_SHOWN, AuditRun
from stockflow.edge.service_layer.console_audit import AuditStart, ConsoleAudit

REPORT: dict[str, Any] = {
    "ok": False,
    "events": 40,
    "skus": 3,
    "checks": [
        {
            "invariant": 1,
            "description": "available never negative",
            "checked": True,
            "note": None,
            "violations": 5,
            "examples": [{"sku": f"SKU-{i}", "detail": "available -1"} for i in range(5)],
        },
        {
            "invariant": 5,
            "description": "orders match",
            "checked": False,
            "note": "not checked: no orders database",
            "violations": 0,
            "examples": [],
        },
    ],
}


class HeldAuditor:
    """Answers with ``run`` once ``release`` is set."""

    def __init__(self, run: AuditRun, configured: str | None = None) -> None:
        self.run = run
        self.release = asyncio.Event()
        self.calls = 0
        self._configured = configured

    @property
    def configured(self) -> str | None:
        return self._configured

    async def audit(self) -> AuditRun:
        self.calls += 1
        await self.release.wait()
        return self.run


async def test_one_audit_runs_at_a_time_and_its_verdict_is_kept() -> None:
    auditor = HeldAuditor(AuditRun.from_report(100.0, 1.5, REPORT))
    audit = ConsoleAudit(auditor)
    assert audit.public_json() == {"running": False, "unavailable": None, "last": None}
    assert audit.start(by="sam") is AuditStart.STARTED
    await asyncio.sleep(0)
    assert audit.start(by="kim") is AuditStart.RUNNING
    assert audit.public_json()["running"] is True
    auditor.release.set()
    await audit.wait()
    assert auditor.calls == 1
    public = audit.public_json()
    assert public["running"] is False
    assert public["last"] == {
        "at": 100.0,
        "seconds": 1.5,
        "ok": False,
        "error": None,
        "events": 40,
        "skus": 3,
        "violations": 5,
    }
    checks = audit.staff_json()["checks"]
    assert [c["invariant"] for c in checks] == [1, 5]
    assert len(checks[0]["examples"]) == EXAMPLES_SHOWN
    assert checks[1]["note"] == "not checked: no orders database"
    await audit.close()


async def test_without_a_store_nothing_runs_and_the_page_is_told_why() -> None:
    auditor = HeldAuditor(AuditRun.failed(0.0, 0.0, "unused"), configured="no event store")
    audit = ConsoleAudit(auditor)
    assert audit.start(by="sam") is AuditStart.UNCONFIGURED
    assert auditor.calls == 0
    assert audit.public_json()["unavailable"] == "no event store"
    assert audit.staff_json() == {"checks": []}


def test_an_audit_that_could_not_run_has_no_verdict() -> None:
    run = AuditRun.failed(5.0, 0.2, "cannot audit: no such file")
    assert run.ok is None
    assert run.public_json()["violations"] is None
    assert run.public_json()["error"] == "cannot audit: no such file"
    assert run.staff_json() == {"checks": []}
