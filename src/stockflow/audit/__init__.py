"""The independent auditor: re-derives every SKU's stock from the event log and checks the
invariants of API.md ("zero phantom stock"). It shares only the published contracts with the
inventory, never its code.
"""

from stockflow.audit.auditor import audit_data_dir, audit_url
from stockflow.audit.report import AuditReport, Check, Violation, render_report
from stockflow.audit.sources import AuditSourceError

__all__ = [
    "AuditReport",
    "AuditSourceError",
    "Check",
    "Violation",
    "audit_data_dir",
    "audit_url",
    "render_report",
]
