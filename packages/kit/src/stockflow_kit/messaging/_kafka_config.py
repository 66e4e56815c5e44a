"""The Kafka bus's settings from its URL, and the topic ⇄ Kafka topic naming.

Kept apart from :mod:`stockflow_kit.messaging.kafka` so both can be tested without a broker.

URL: ``kafka://host:port[,host2:port2][?option=value&...]``. Options:

* ``prefix``: isolates a deployment or a test run on a shared broker; Kafka topics and
  consumer groups get ``<prefix>.`` before their names. Letters, digits and ``-``. Default: none.
* ``partitions``: partitions of each Kafka topic the bus creates. Default 3.
* ``replication``: replication factor of the topics it creates. Default 1.
* ``timeout``: seconds to wait for the broker (connect, acks=all, commits). Default 10.
* ``session_timeout``: seconds after which the broker gives a silent consumer's partitions
  to the others of its group (how soon a crashed consumer's messages come back). Default 10.
* ``idempotence``: ``auto`` (try the idempotent producer, fall back when the broker has no
  ``InitProducerId``, like Tansu), ``true`` or ``false``. Default ``auto``.

Naming (topic ``orders.events``, prefix ``t1``, durable ``billing``)::

    topic           orders.events        → Kafka topic  t1.orders  (header X-Stockflow-Topic)
    wildcard        orders.>             → Kafka topic  t1.orders  (every record)
    dead letters    deadletter.orders    → Kafka topic  t1.deadletter
    durable         billing              → groups t1.billing (positions), t1.billing.delivered
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import parse_qsl, urlsplit

from stockflow_kit.messaging.bus import stream_of

__all__ = ["TOPIC_HEADER", "KafkaOptions", "check_durable", "check_topic", "parse_kafka_url"]

TOPIC_HEADER: Final = "X-Stockflow-Topic"
"""Record header: the kit topic of the record (a Kafka topic holds a whole stream)."""

_PREFIX: Final = re.compile(r"^[A-Za-z0-9-]{1,32}$")
_TOKEN: Final = re.compile(r"^[A-Za-z0-9_-]+$")  # Kafka allows [A-Za-z0-9._-]; "." separates
_DURABLE: Final = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_FLOATS: Final = {"timeout": 10.0, "session_timeout": 10.0}
_INTS: Final = {"partitions": 3, "replication": 1}


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """What a ``kafka://`` URL says; see the module docstring for the options."""

    bootstrap: tuple[str, ...]
    prefix: str = ""
    partitions: int = 3
    replication: int = 1
    timeout: float = 10.0
    session_timeout: float = 10.0
    idempotence: Literal["auto", "true", "false"] = "auto"

    def kafka_topic(self, topic: str) -> str:
        """Return the Kafka topic holding *topic* (its stream, with the prefix)."""
        return self._named(stream_of(topic))

    def group(self, durable: str) -> str:
        """Return the consumer group of the durable subscription *durable*."""
        return self._named(durable)

    def delivered_group(self, durable: str) -> str:
        """Return the group whose offsets mark what *durable* has handed out at least once."""
        return self._named(f"{durable}.delivered")

    def _named(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name


def check_topic(topic: str, *, wildcard: bool = False) -> None:
    """Refuse an invalid kit topic; with *wildcard*, ``"<stream>.>"`` is allowed.

    Raises:
        ValueError: for an empty or invalid token, or a misplaced wildcard.
    """
    tokens = topic.split(".")
    if wildcard and len(tokens) > 1 and tokens[-1] == ">":
        tokens = tokens[:-1]
    if not all(_TOKEN.match(token) for token in tokens):
        msg = f"invalid topic {topic!r}: dot-separated tokens of letters, digits, '_' and '-'"
        raise ValueError(msg)


def check_durable(durable: str) -> None:
    """Refuse a durable name Kafka cannot use as a group id.

    Raises:
        ValueError: unless it is 1 to 128 letters, digits, ``_`` or ``-``.
    """
    if not _DURABLE.match(durable):
        msg = f"invalid durable name {durable!r}: 1-128 letters, digits, '_' or '-'"
        raise ValueError(msg)


def parse_kafka_url(url: str) -> KafkaOptions:
    """Read a ``kafka://`` URL (see the module docstring).

    Raises:
        ValueError: for another scheme, no host, an unknown option or a bad value.
    """
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ValueError(f"not a kafka://host:port URL: {url!r}")
    bootstrap = tuple(host.strip() for host in parts.netloc.split(",") if host.strip())
    values: dict[str, object] = {}
    for key, raw in parse_qsl(parts.query, keep_blank_values=True):
        if key in _FLOATS:
            values[key] = _positive(key, float(raw))
        elif key in _INTS:
            values[key] = int(_positive(key, int(raw)))
        elif key == "prefix":
            if not _PREFIX.match(raw):
                raise ValueError(f"invalid prefix {raw!r}: 1-32 letters, digits or '-'")
            values[key] = raw
        elif key == "idempotence":
            if raw not in {"auto", "true", "false"}:
                raise ValueError(f"idempotence must be auto, true or false, not {raw!r}")
            values[key] = raw
        else:
            raise ValueError(f"unknown kafka:// option {key!r}")
    return KafkaOptions(bootstrap=bootstrap, **values)  # type: ignore[arg-type]  # checked above


def _positive(key: str, value: float) -> float:
    if value <= 0:
        raise ValueError(f"{key} must be positive, not {value}")
    return value
