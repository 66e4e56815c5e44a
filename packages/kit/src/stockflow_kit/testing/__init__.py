"""Test helpers that belong to no one subpackage: a fault-injecting TCP proxy.

:class:`FaultProxy` sits between a client and a server (a service and its downstream, a
service and its broker) and injects the faults a hostile network has, switchable while it
runs: added latency with jitter (:class:`Latency`), connection resets (:class:`Reset`), a
black hole that accepts and never answers (:class:`BlackHole`), or nothing
(:data:`PASS_THROUGH`). It is the toxiproxy of machines that have no toxiproxy server::

    async with FaultProxy("127.0.0.1", inventory_port, seed=7) as proxy:
        client = ResilientClient("inventory", proxy.url)   # calls go through the proxy
        proxy.set_fault(Latency(0.5, jitter=0.1))
        ...
        proxy.set_fault(Reset())                            # cuts open connections too
"""

from ._fault_proxy import (
    PASS_THROUGH,
    BlackHole,
    Fault,
    FaultProxy,
    Latency,
    PassThrough,
    ProxyCounts,
    Reset,
)

__all__ = [
    "PASS_THROUGH",
    "BlackHole",
    "Fault",
    "FaultProxy",
    "Latency",
    "PassThrough",
    "ProxyCounts",
    "Reset",
]
