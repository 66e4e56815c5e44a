"""Run the audit against an event store given by URL: ``sqlite:///<path>`` or ``postgresql://…``,
and (invariant 5) against the orders database, given the same way."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from stockflow.audit.fold import AuditFold
from stockflow.audit.order_sources import NoOrdersDatabase, read_orders_postgres, read_orders_sqlite
from stockflow.audit.orders import DEFAULT_GRACE, OrdersCheck
from stockflow.audit.report import AuditReport, OrdersCoverage
from stockflow.audit.sources import AuditSourceError, read_postgres, read_sqlite, sqlite_path_of

__all__ = ["audit_data_dir", "audit_url"]


def audit_data_dir(
    data_dir: Path,
    *,
    orders_url: str | None = None,
    grace: float = DEFAULT_GRACE,
    now: float | None = None,
) -> AuditReport:
    """Audit the embedded deployment: ``<data_dir>/inventory.sqlite3`` and, next to it,
    ``<data_dir>/orders.sqlite3`` (unless *orders_url* names the orders database)."""
    if not data_dir.is_dir():
        raise AuditSourceError(
            f"data directory {data_dir} does not exist: pass the --data-dir that"
            " `stockflow up` used (or --event-store-url)"
        )
    return audit_url(
        f"sqlite:///{data_dir / 'inventory.sqlite3'}",
        orders_url=orders_url or f"sqlite:///{data_dir / 'orders.sqlite3'}",
        grace=grace,
        now=now,
    )


def audit_url(
    url: str,
    *,
    schema: str = "inventory",
    orders_url: str | None = None,
    orders_schema: str = "public",
    grace: float = DEFAULT_GRACE,
    now: float | None = None,
) -> AuditReport:
    """Fold the whole event log at *url*, compare the projection, check the orders at
    *orders_url* against the fold (none: invariant 5 is not checked), and report every check.

    *now* (unix seconds, default the start of the audit) minus *grace* is the moment a PENDING
    order's ``expires_at`` must not be older than.

    Raises:
        AuditSourceError: a store cannot be read (missing file, no tables, no connection).
    """
    started = time.perf_counter()
    now = time.time() if now is None else now
    fold = AuditFold(track_shipped=orders_url is not None)
    source = _read(
        url,
        schema,
        "event store",
        lambda path: read_sqlite(path, fold),
        lambda pg_url, pg_schema: read_postgres(pg_url, fold, schema=pg_schema),
    )
    if orders_url is None:
        orders = OrdersCoverage(not_checked="no orders database (pass --orders-url)")
    else:
        orders = _audit_orders(orders_url, orders_schema, OrdersCheck(fold, now=now, grace=grace))
    return AuditReport(
        source=source,
        skus=len(fold.skus),
        events=fold.events,
        open_lines=len(fold.held),
        seconds=time.perf_counter() - started,
        counts=dict(fold.counts),
        examples={check: list(found) for check, found in fold.violations.items() if found},
        orders=orders,
    )


def _audit_orders(url: str, schema: str, check: OrdersCheck) -> OrdersCoverage:
    try:
        source = _read(
            url,
            schema,
            "orders database",
            lambda path: read_orders_sqlite(path, check),
            lambda pg_url, pg_schema: read_orders_postgres(pg_url, check, schema=pg_schema),
        )
    except NoOrdersDatabase as err:
        return OrdersCoverage(not_checked=f"no orders database ({err})")
    return OrdersCoverage(
        source=source, orders=check.orders, unknown_reservations=check.unknown_reservations
    )


def _read(
    url: str,
    schema: str,
    what: str,
    sqlite: Callable[[Path], None],
    postgres: Callable[[str, str], None],
) -> str:
    """Read *url* with the reader for its scheme; return how the report names the source."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = sqlite_path_of(url)
        sqlite(path)
        return str(path)
    if parts.scheme in {"postgresql", "postgres"}:
        postgres(url, schema)
        return f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path} ({schema})"
    raise AuditSourceError(
        f"unsupported {what} URL {url!r}: use sqlite:///<path> or postgresql://…"
    )
