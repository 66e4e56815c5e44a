"""The independent auditor: re-derives every SKU's stock from the event log and checks the
invariants of API.md ("zero phantom stock"), and the orders database against it (invariant 5).
It shares only the published contracts and storage layouts with the services, never their
code.
"""

from stockflow.audit.auditor import audit_data_dir, audit_url
from stockflow.audit.orders import DEFAULT_GRACE
from stockflow.audit.report import AuditReport, Check, OrdersCoverage, Violation, render_report
from stockflow.audit.sources import AuditSourceError

__all__ = [
    "DEFAULT_GRACE",
    "AuditReport",
    "AuditSourceError",
    "Check",
    "OrdersCoverage",
    "Violation",
    "audit_data_dir",
    "audit_url",
    "render_report",
]
