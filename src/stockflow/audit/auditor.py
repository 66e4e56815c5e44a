"""Run the audit against an event store given by URL: ``sqlite:///<path>`` or ``postgresql://…``."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from stockflow.audit.fold import AuditFold
from stockflow.audit.report import AuditReport
from stockflow.audit.sources import AuditSourceError, read_postgres, read_sqlite, sqlite_path_of

__all__ = ["audit_data_dir", "audit_url"]


def audit_data_dir(data_dir: Path) -> AuditReport:
    """Audit the embedded deployment's inventory store, ``<data_dir>/inventory.sqlite3``."""
    if not data_dir.is_dir():
        raise AuditSourceError(
            f"data directory {data_dir} does not exist: pass the --data-dir that"
            " `stockflow up` used (or --event-store-url)"
        )
    return audit_url(f"sqlite:///{data_dir / 'inventory.sqlite3'}")


def audit_url(url: str, *, schema: str = "inventory") -> AuditReport:
    """Fold the whole event log at *url*, compare the projection, and report every check.

    Raises:
        AuditSourceError: the store cannot be read (missing file, no tables, no connection).
    """
    started = time.perf_counter()
    fold = AuditFold()
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = sqlite_path_of(url)
        read_sqlite(path, fold)
        source = str(path)
    elif scheme in {"postgresql", "postgres"}:
        read_postgres(url, fold, schema=schema)
        parts = urlsplit(url)
        source = f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path} ({schema})"
    else:
        raise AuditSourceError(
            f"unsupported event store URL {url!r}: use sqlite:///<path> or postgresql://…"
        )
    return AuditReport(
        source=source,
        skus=len(fold.skus),
        events=fold.events,
        open_lines=len(fold.held),
        seconds=time.perf_counter() - started,
        counts=dict(fold.counts),
        examples={check: list(found) for check, found in fold.violations.items() if found},
    )
