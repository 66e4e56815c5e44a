"""Maintenance commands of the services (``stockflow inventory …``)."""

from __future__ import annotations

from collections.abc import Callable

from stockflow.inventory.bootstrap import event_store_for
from stockflow.inventory.service_layer.views import check_projection, rebuild_stock

__all__ = ["rebuild_projection"]


async def rebuild_projection(url: str, *, check: bool, echo: Callable[[str], None]) -> int:
    """Rebuild the stock rows from the events; with ``check``, report rows that differ.

    Returns:
        The number of SKUs whose live row differs (0 when not checking).
    """
    store = event_store_for(url)
    await store.start()
    try:
        if not check:
            rows = await rebuild_stock(store)
            echo(f"rebuilt {len(rows)} SKUs from the event log")
            return 0
        mismatches = await check_projection(store)
        for live, rebuilt in mismatches[:50]:
            echo(f"MISMATCH live={live} rebuilt={rebuilt}")
        echo(f"projection check: {len(mismatches)} SKU(s) differ")
        return len(mismatches)
    finally:
        await store.close()
