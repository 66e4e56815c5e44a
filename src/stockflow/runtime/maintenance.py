"""Maintenance commands of the services (``stockflow inventory …``)."""

from __future__ import annotations

from collections.abc import Callable

from stockflow.inventory.bootstrap import event_store_for
from stockflow.inventory.service_layer.ports import ConcurrencyError
from stockflow.inventory.service_layer.views import check_projection
from stockflow.inventory.service_layer.views import rebuild_projection as replace_projection

__all__ = ["rebuild_projection"]


async def rebuild_projection(url: str, *, check: bool, echo: Callable[[str], None]) -> int:
    """Replace the stock rows by the fold of the events; with ``check``, only report the rows
    that differ.

    The rebuild is meant for a stopped inventory service: it replaces the rows and the
    projection checkpoint in one transaction, and is refused (nothing replaced) if a writer
    committed events while it was folding.

    Returns:
        The number of SKUs whose live row differs when checking; else 0, or 1 when the
        rebuild was refused.
    """
    store = event_store_for(url)
    await store.start()
    try:
        if not check:
            try:
                folded = await replace_projection(store)
            except ConcurrencyError as error:
                echo(f"rebuild refused, nothing replaced: {error}; stop the service and retry")
                return 1
            echo(f"rebuilt {len(folded.rows)} SKUs from the event log up to {folded.position}")
            return 0
        mismatches = await check_projection(store)
        for live, rebuilt in mismatches[:50]:
            echo(f"MISMATCH live={live} rebuilt={rebuilt}")
        echo(f"projection check: {len(mismatches)} SKU(s) differ")
        return len(mismatches)
    finally:
        await store.close()
