"""The experiments' control: before an experiment, the baseline of the 5xx counters, and the
fault proxy (when the run has one) started in a thread of the ``chaos`` process that the
actions switch; after it (rollbacks included), the proxy stopped."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

from tests.system.system import SERVICES

from stockflow_chaos import state
from stockflow_chaos.context import described, five_xx, scrape, system
from stockflow_kit.testing import Fault, FaultProxy


class ProxyThread:
    """A :class:`FaultProxy` on an event loop of its own thread, switched from other threads."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)

    def set_fault(self, fault: Fault) -> None:
        self._loop.call_soon_threadsafe(self.proxy.set_fault, fault)

    def counts(self) -> dict[str, int]:
        async def read() -> dict[str, int]:
            return dataclasses.asdict(self.proxy.counts)

        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def before_experiment_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    """Take the baseline of every service's 5xx answers (``probes.server_errors`` counts
    from it: the ``/readyz`` 503s of a starting service came before the experiment), and
    start the fault proxy the run's description asks for (``proxy``: port, upstream, seed)."""
    del context, kwargs
    assert configuration is not None
    target = system(configuration)
    for service in SERVICES:
        samples = scrape(f"{target.url(service)}/metrics")
        state.baseline[service] = (five_xx(samples), five_xx(samples, "503"))
    wanted = described(configuration).get("proxy")
    if wanted is None:
        return
    state.proxy = ProxyThread(
        FaultProxy("127.0.0.1", wanted["upstream_port"], port=wanted["port"], seed=wanted["seed"])
    )
    state.proxy.start()


def after_experiment_control(context: dict[str, Any], **kwargs: Any) -> None:
    """Stop the proxy (edge's calls to its downstream fail from then on)."""
    del context, kwargs
    if state.proxy is not None:
        state.proxy.stop()
        state.proxy = None
