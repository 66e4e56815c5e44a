"""One run of the independent auditor, as the console shows it.

The auditor is its own program (``stockflow audit``): edge never imports it, it reads the
report the command writes (``--json``, the shape of ``AuditReport.to_json``) and its exit code
(0 every invariant holds, 1 some broke, 2 the data could not be read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["EXAMPLES_SHOWN", "AuditRun"]

EXAMPLES_SHOWN: Final = 3
"""Examples of a broken invariant shown on the page (the report has more)."""


@dataclass(frozen=True)
class AuditRun:
    """What one audit found: ``ok`` is ``None`` when it could not say (``error`` tells why)."""

    at: float
    """When it started (seconds since the epoch)."""
    seconds: float
    ok: bool | None
    report: Mapping[str, Any] | None = None
    error: str | None = None

    @classmethod
    def from_report(cls, at: float, seconds: float, report: Mapping[str, Any]) -> AuditRun:
        return cls(at=at, seconds=seconds, ok=report.get("ok") is True, report=report)

    @classmethod
    def failed(cls, at: float, seconds: float, error: str) -> AuditRun:
        return cls(at=at, seconds=seconds, ok=None, error=error)

    @property
    def violations(self) -> int:
        checks = self.report.get("checks", []) if self.report else []
        return sum(int(c.get("violations", 0)) for c in checks if isinstance(c, Mapping))

    def public_json(self) -> dict[str, Any]:
        """The verdict and its size: anyone may know whether the stock adds up."""
        report = self.report or {}
        return {
            "at": self.at,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "error": self.error,
            "events": report.get("events"),
            "skus": report.get("skus"),
            "violations": self.violations if self.report else None,
        }

    def staff_json(self) -> dict[str, Any]:
        """Every check with its count and a few examples (SKUs and order ids: staff's)."""
        checks = self.report.get("checks", []) if self.report else []
        return {
            "checks": [
                {
                    "invariant": c.get("invariant"),
                    "description": c.get("description"),
                    "checked": c.get("checked"),
                    "note": c.get("note"),
                    "violations": c.get("violations"),
                    "examples": list(c.get("examples", []))[:EXAMPLES_SHOWN],
                }
                for c in checks
                if isinstance(c, Mapping)
            ]
        }
