"""A ``serve`` process exports its spans over OTLP/HTTP when told where to, the relay's
publish of a request's event in the request's trace.

No collector runs here (toolchain.md), so the test serves a stand-in (:mod:`tests.otlp`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from tests.inventory.crash.worker_process import Worker
from tests.otlp import Collector, serving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
RECEIPT = "POST /inventory/{sku}/receipts"
PUBLISH = "inventory.events publish"


@pytest.mark.slow
async def test_a_request_s_spans_reach_the_otlp_collector_with_the_caller_s_trace_id(
    tmp_path: Path,
) -> None:
    collector = Collector()
    async with serving(collector) as collector_port:
        worker = Worker(
            {
                "INVENTORY_EVENT_STORE_URL": f"sqlite:///{tmp_path}/inventory.sqlite3",
                "BUS_URL": f"sqlite:///{tmp_path}/bus.sqlite3",
                "INVENTORY_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            },
            tmp_path / "worker.log",
        )
        worker.start()
        try:
            await worker.wait_ready()
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    f"http://127.0.0.1:{worker.port}/inventory/SKU-T/receipts",
                    json={"qty": 3},
                    headers={**worker.auth, "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
                )
            assert response.status_code == 201
            await asyncio.wait_for(collector.received.wait(), 20)
            for _ in range(100):  # the batch processor may send the spans a bit later
                names = {name for _, name, trace in collector.spans if trace == TRACE_ID}
                if {RECEIPT, PUBLISH} <= names:
                    break
                await asyncio.sleep(0.05)
        finally:
            worker.terminate()
    mine = [(service, name) for service, name, trace in collector.spans if trace == TRACE_ID]
    assert ("inventory", RECEIPT) in mine, collector.spans[:10]
    # The event log keeps the request's trace context: the relay publishes StockReceived in it.
    assert ("inventory", PUBLISH) in mine, collector.spans[:10]
