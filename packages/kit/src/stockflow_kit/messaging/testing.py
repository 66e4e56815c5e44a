"""The bus contract suite: what every :class:`~stockflow_kit.messaging.bus.Bus` must do.

Subclass :class:`BusContract` once per backend in a test module (the base has no ``Test``
prefix, so pytest collects only the subclasses) and provide the ``bus_url`` fixture::

    class TestSqliteLogBus(BusContract):
        @pytest.fixture
        def bus_url(self, tmp_path: Path) -> str:
            return f"sqlite:///{tmp_path / 'bus.sqlite3'}"

Fixture interface (override in the subclass):

* ``bus_url`` (fixture, **required**): the URL of fresh storage for one test. Every bus the
  suite opens for that test uses this URL, so a second bus is "the same storage".
* :meth:`BusContract.open_bus` (method, optional): build an *unstarted* bus for the URL;
  :func:`~stockflow_kit.messaging.factory.make_bus` by default. Override it when buses must
  share something the URL cannot carry (the in-memory broker).
* :meth:`BusContract.restart_server` (async method, optional): restart the storage/server
  while no bus is open; used only when ``supports_server_restart`` is true.
* Capability flags: ``supports_subprocess`` (a bus opened by another process on the same URL
  sees the same storage), ``supports_server_restart``; and the tunables ``ack_wait`` (seconds
  used by redelivery tests) and ``backpressure_messages``.

Provided fixtures: ``bus`` (a started bus, closed afterwards), ``stream`` (a fresh stream name)
and ``topic`` (``"<stream>.events"``). The suite needs pytest with pytest-asyncio in auto mode.
Metrics are read from the process-wide default registry (labels are unique per test).

The module doubles as the consumer process of the crash test:
``python -m stockflow_kit.messaging.testing URL TOPIC DURABLE ACK_WAIT`` fetches one message,
prints its id, and waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence

from stockflow_kit.messaging._contract_base import make_envelopes
from stockflow_kit.messaging._contract_dead_letters import DeadLetterCases
from stockflow_kit.messaging._contract_delivery import DeliveryCases
from stockflow_kit.messaging._contract_recovery import RecoveryCases
from stockflow_kit.messaging.bus import Bus, ConsumerConfig, ConsumerLag, Delivery, Subscription
from stockflow_kit.messaging.envelope import Envelope
from stockflow_kit.messaging.factory import make_bus

__all__ = [
    "BusContract",
    "CrashAfterPublishBus",
    "SimulatedCrashError",
    "WrappedSubscription",
    "make_envelopes",
]


class WrappedSubscription:
    """A subscription that hands every call to *inner*: subclass it and override what a test
    needs to see or break (a failing fetch, a recorded ``max_wait``)."""

    def __init__(self, inner: Subscription) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    async def fetch(self, max_messages: int = 100, max_wait: float = 1.0) -> Sequence[Delivery]:
        return await self.inner.fetch(max_messages, max_wait)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        await self.inner.ack(deliveries)

    async def nak(
        self, deliveries: Sequence[Delivery], *, delay: float = 0.0, reason: str | None = None
    ) -> None:
        await self.inner.nak(deliveries, delay=delay, reason=reason)

    async def lag(self) -> ConsumerLag:
        return await self.inner.lag()

    async def close(self) -> None:
        await self.inner.close()


class BusContract(DeliveryCases, DeadLetterCases, RecoveryCases):
    """The abstract contract suite of the bus port; see the module docstring for its fixtures.

    The cases live in :mod:`._contract_delivery`, :mod:`._contract_dead_letters` and
    :mod:`._contract_recovery`; the fixtures, capability flags and helpers in
    :mod:`._contract_base`.
    """


async def _consume_one_and_hang(url: str, topic: str, durable: str, ack_wait: float) -> None:
    bus = make_bus(url)
    await bus.start()
    sub = await bus.subscribe(topic, durable, ConsumerConfig(ack_wait=ack_wait))
    deliveries: Sequence[Delivery] = await sub.fetch(1, max_wait=10.0)
    for delivery in deliveries:
        print(delivery.envelope.id, flush=True)  # noqa: T201 - the parent test reads it
    await asyncio.sleep(3600)  # never acks: the parent kills this process


if __name__ == "__main__":
    url, topic, durable, ack_wait = sys.argv[1:5]
    asyncio.run(_consume_one_and_hang(url, topic, durable, float(ack_wait)))


class SimulatedCrashError(Exception):
    """The process "dies" here (raised by :class:`CrashAfterPublishBus`)."""


class CrashAfterPublishBus:
    """A Bus that stores what it is given, then fails before the caller hears of it.

    For testing outbox relays and other publishers: the messages are on the bus, but the
    publisher "crashed" before it could record that (mark sent, move a checkpoint), so it
    will publish them again, and the consumer side must see each effect once.
    """

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def start(self) -> None:
        await self.bus.start()

    async def close(self) -> None:
        await self.bus.close()

    async def subscribe(
        self, topic: str, durable: str, config: ConsumerConfig | None = None
    ) -> Subscription:
        return await self.bus.subscribe(topic, durable, config)

    async def publish(
        self,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        headers: Mapping[str, str] | None = None,
        causes: Sequence[str | None] | None = None,
    ) -> None:
        await self.bus.publish(topic, envelopes, headers=headers, causes=causes)
        raise SimulatedCrashError
