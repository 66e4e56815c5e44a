"""Why there is no Pulsar bus yet: what pulsar-lite 0.2.0 (the embeddable broker) gets wrong.

These tests drive the broker with the official pulsar-client directly. The two strict
``xfail`` cases document broker defects that rule out the bus contract; when a fixed
pulsar-lite is locked they start to pass, the suite fails on the XPASS, and it is time to
write ``PulsarBus`` (see docs/bus-backends.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psutil
import pulsar
import pytest

from stockflow_kit.messaging.local_brokers import LocalPulsarLite

pytestmark = pytest.mark.slow

_QUIET = pulsar.ConsoleLogger(pulsar.LoggerLevel.Error)


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalPulsarLite]:
    with LocalPulsarLite() as running:
        yield running


@pytest.fixture
def client(broker: LocalPulsarLite) -> Iterator[pulsar.Client]:
    made = pulsar.Client(broker.url, logger=_QUIET, operation_timeout_seconds=5)
    yield made
    made.close()


def _topic() -> str:
    return f"persistent://public/default/t{uuid.uuid4().hex[:12]}"


def test_two_private_brokers_run_at_once_on_loopback_without_a_metrics_port(
    broker: LocalPulsarLite,
) -> None:
    with LocalPulsarLite() as other:
        assert other.port != broker.port
        assert other.pid is not None
        listening = {
            (c.laddr.ip, c.laddr.port)
            for c in psutil.Process(other.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {("127.0.0.1", other.port)}  # no metrics port on 0.0.0.0:8080


def test_a_subscription_made_before_the_first_publish_receives(client: pulsar.Client) -> None:
    """The toolkit probe's timeout was not this: a small publish after subscribing arrives."""
    topic = _topic()
    consumer = client.subscribe(topic, "early", consumer_type=pulsar.ConsumerType.Shared)
    producer = client.create_producer(topic)
    for n in range(10):
        producer.send(f"m{n}".encode())
    got = [consumer.receive(timeout_millis=3000).data() for _ in range(10)]
    assert got == [f"m{n}".encode() for n in range(10)]


@pytest.mark.xfail(
    strict=True,
    reason="pulsar-lite 0.2.0 never dispatches a contiguous range of a backlog larger than"
    " the consumer's receiver queue, not even to a new consumer of the subscription",
)
def test_a_backlog_larger_than_the_receiver_queue_is_delivered_whole(
    client: pulsar.Client,
) -> None:
    topic, total = _topic(), 20_000
    producer = client.create_producer(topic, batching_enabled=False)
    for n in range(total):
        producer.send_async(f"m{n}".encode(), None)
    producer.flush()
    consumer = client.subscribe(
        topic,
        "backlog",
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
        receiver_queue_size=1000,
    )
    seen: set[bytes] = set()
    try:
        while len(seen) < total:
            message = consumer.receive(timeout_millis=3000)
            consumer.acknowledge(message)
            seen.add(message.data())
    except pulsar.Timeout:
        pass
    assert len(seen) == total, f"{total - len(seen)} of {total} messages never arrived"


@pytest.mark.xfail(
    strict=True,
    reason="pulsar-lite 0.2.0 times out when a second connection joins an existing Shared"
    " subscription, so two processes cannot share a durable subscription",
)
def test_a_second_process_can_join_a_shared_subscription(
    broker: LocalPulsarLite, client: pulsar.Client
) -> None:
    topic = _topic()
    client.subscribe(topic, "shared", consumer_type=pulsar.ConsumerType.Shared)
    other = pulsar.Client(broker.url, logger=_QUIET, operation_timeout_seconds=5)
    try:
        other.subscribe(topic, "shared", consumer_type=pulsar.ConsumerType.Shared)
    finally:
        other.close()
