"""JetStreamBus pieces that need no server: URL options, naming, PubAck and ack-subject parsing."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from urllib.parse import urlparse

import pytest
from nats.aio.client import Client as NATS
from nats.aio.client import Server
from nats.aio.msg import Msg

from stockflow_kit.messaging._jetstream_config import (
    JetStreamNaming,
    check_durable_name,
    parse_jetstream_url,
)
from stockflow_kit.messaging._jetstream_publish import (
    RejectedPublishError,
    UnconfirmedPublishError,
    count_duplicates,
)
from stockflow_kit.messaging._jetstream_subscription import _delivery_count, _stream_sequence
from stockflow_kit.messaging.bus import BusClosedError, MessagingError
from stockflow_kit.messaging.factory import make_bus
from stockflow_kit.messaging.jetstream import JetStreamBus
from stockflow_kit.messaging.testing import make_envelopes


def test_url_options_have_documented_defaults() -> None:
    options = parse_jetstream_url("nats://127.0.0.1:4222")
    assert options.servers == ("nats://127.0.0.1:4222",)
    assert (options.naming.prefix, options.duplicate_window, options.timeout) == ("", 120.0, 5.0)
    assert options.reconnect_wait == 0.5
    assert options.replicas == 1


def test_url_carries_several_servers_and_every_option() -> None:
    options = parse_jetstream_url(
        "tls://a:4222,b:4223?prefix=t1-x&duplicate_window=30&timeout=1.5&reconnect_wait=0.1"
        "&replicas=3"
    )
    assert options.servers == ("tls://a:4222", "tls://b:4223")
    assert options.naming == JetStreamNaming("t1-x")
    assert (options.duplicate_window, options.timeout, options.reconnect_wait) == (30, 1.5, 0.1)
    assert options.replicas == 3


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4222",
        "nats://",
        "nats://h:1?prefx=a",
        "nats://h:1?prefix=a_b",
        "nats://h:1?prefix=a.b",
        "nats://h:1?timeout=0",
        "nats://h:1?timeout=soon",
        "nats://h:1?duplicate_window=-1",
        "nats://h:1?replicas=0",
        "nats://h:1?replicas=6",
        "nats://h:1?replicas=two",
    ],
)
def test_a_bad_url_is_refused_with_a_value_error(url: str) -> None:
    with pytest.raises(ValueError, match=r"NATS|prefix|option|could not convert|replicas"):
        parse_jetstream_url(url)


def test_topics_map_to_prefixed_subjects_and_streams_and_back() -> None:
    naming = JetStreamNaming("t1")
    assert naming.subject("orders.events") == "t1.orders.events"
    assert naming.topic("t1.orders.events") == "orders.events"
    assert naming.subject("orders.>", wildcard=True) == "t1.orders.>"
    assert naming.stream(naming.stream_token("orders.events")) == "t1_orders"
    assert naming.stream_subjects("orders") == ["t1.orders", "t1.orders.>"]
    assert naming.stream("deadletter") == "t1_deadletter"


def test_without_a_prefix_topics_are_subjects_and_tokens_are_stream_names() -> None:
    naming = JetStreamNaming()
    assert naming.subject("orders.events") == naming.topic("orders.events") == "orders.events"
    assert naming.stream("Orders") == "Orders"


@pytest.mark.parametrize(
    ("topic", "wildcard"),
    [
        ("orders..events", False),
        ("orders.>", False),
        ("orders.*", True),
        ("orders.>.x", True),
        ("orders.a>", True),
        (">", True),
        ("", False),
        ("or ders.events", False),
    ],
)
def test_invalid_topics_are_refused(topic: str, wildcard: bool) -> None:
    with pytest.raises(ValueError, match="invalid topic"):
        JetStreamNaming("p").subject(topic, wildcard=wildcard)


@pytest.mark.parametrize("durable", ["a.b", "a*", "a>", "a b", "a/b", ""])
def test_invalid_durable_names_are_refused(durable: str) -> None:
    with pytest.raises(ValueError, match="invalid durable"):
        check_durable_name(durable)


def _reply(data: object = None, headers: dict[str, str] | None = None) -> asyncio.Future[Msg]:
    future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
    body = b"" if data is None else json.dumps(data).encode()
    future.set_result(Msg(NATS(), subject="_INBOX.x.1", data=body, headers=headers))
    return future


async def test_pubacks_count_duplicates_as_stored() -> None:
    futures = [
        _reply({"stream": "s", "seq": 1}),
        _reply({"stream": "s", "seq": 1, "duplicate": True}),
    ]
    assert count_duplicates(futures, 0) == 1


async def test_a_missing_puback_is_unconfirmed_from_that_message_on() -> None:
    pending: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
    futures = [_reply({"stream": "s", "seq": 7, "duplicate": True}), pending, _reply({"seq": 8})]
    with pytest.raises(UnconfirmedPublishError) as caught:
        count_duplicates(futures, 10)
    assert (caught.value.index, caught.value.duplicates) == (11, 1)


async def test_no_responders_and_503_are_unconfirmed_other_api_errors_are_rejections() -> None:
    with pytest.raises(UnconfirmedPublishError, match="no stream"):
        count_duplicates([_reply(headers={"Status": "503"})], 0)
    with pytest.raises(UnconfirmedPublishError, match="unavailable"):
        count_duplicates([_reply({"error": {"code": 503, "description": "x"}})], 0)
    with pytest.raises(RejectedPublishError, match="message 3 rejected"):
        count_duplicates([_reply({"error": {"code": 400, "err_code": 10054}})], 3)


@pytest.mark.parametrize(
    ("reply", "count"),
    [
        ("$JS.ACK.orders.reader.3.17.20.1700000000000000000.4", 3),
        ("$JS.ACK.hub.ACCHASH.orders.reader.2.17.20.1700000000000000000.4.tok", 2),
    ],
)
def test_the_delivery_count_is_read_from_v1_and_v2_ack_subjects(reply: str, count: int) -> None:
    assert _delivery_count(reply) == count


async def test_make_bus_builds_an_unstarted_jetstream_bus_that_refuses_work() -> None:
    bus = make_bus("nats://127.0.0.1:1?prefix=unit", name="unit")
    assert isinstance(bus, JetStreamBus)
    with pytest.raises(BusClosedError, match="not started"):
        await bus.publish("orders.events", make_envelopes(1))
    with pytest.raises(BusClosedError):
        await bus.subscribe("orders.events", "reader")
    await bus.close()
    await bus.close()


async def test_start_gives_up_after_the_timeout_when_no_server_answers() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        bus = JetStreamBus(f"nats://127.0.0.1:{port}?timeout=0.3&reconnect_wait=0.05")
        started = time.monotonic()
        with pytest.raises(MessagingError, match="cannot start"):
            await bus.start()
    assert time.monotonic() - started < 2.0
    with pytest.raises(BusClosedError):
        await bus.publish("orders.events", make_envelopes(1))


def test_the_stream_sequence_is_read_from_v1_and_v2_ack_subjects() -> None:
    assert _stream_sequence("$JS.ACK.orders.reader.3.17.20.1700000000000000000.4") == 17
    assert _stream_sequence("$JS.ACK.hub.HASH.orders.reader.2.18.20.1700000000000000000.4.x") == 18


def test_reconnects_back_off_exponentially_with_full_jitter_up_to_a_cap() -> None:
    bus = JetStreamBus("nats://a:4222,b:4222?reconnect_wait=0.5")
    tried = Server(urlparse("nats://a:4222"), reconnects=3)
    fresh = Server(urlparse("nats://b:4222"), reconnects=0)
    server, delay = bus._reconnect_backoff([tried, fresh], {})
    assert server is fresh
    assert 0 <= delay <= 0.5
    delays = [bus._reconnect_backoff([tried], {})[1] for _ in range(200)]
    assert min(delays) >= 0
    assert max(delays) <= 4.0
    assert max(delays) > 2.0, "the ceiling doubles with every failed attempt"
    worn = Server(urlparse("nats://a:4222"), reconnects=60)
    assert max(bus._reconnect_backoff([worn], {})[1] for _ in range(200)) <= 5.0
