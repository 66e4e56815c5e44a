"""The JetStream bus's settings from its URL, and the topic ⇄ subject ⇄ stream naming.

Kept apart from :mod:`stockflow_kit.messaging.jetstream` so both can be tested without a server.

URL: ``nats://host:port[,host2:port2][?option=value&...]`` (``tls://`` for TLS). Options:

* ``prefix``: isolates a deployment or a test run on a shared server. Subjects get the
  prefix as their first token and stream names ``<prefix>_`` before them. Letters, digits
  and ``-`` only, so no two (prefix, stream) pairs map to one name. Default: none.
* ``duplicate_window``: seconds in which JetStream drops a re-published envelope id
  (``Nats-Msg-Id``). Default 120.
* ``timeout``: seconds to wait for a PubAck, an ack confirmation or a JetStream API answer.
  Default 5.
* ``reconnect_wait``: seconds between reconnect attempts (nats-py adds jitter). Default 0.5.
* ``replicas``: copies of each stream the bus creates (1-5; JetStream clusters only above 1):
  a PubAck then means a majority of them stored the message. Default 1.

Naming (topic ``orders.events``, prefix ``t1``)::

    topic           orders.events        → subject  t1.orders.events
    stream token    orders               → stream   t1_orders   subjects  t1.orders, t1.orders.>
    wildcard        orders.>             → filter   t1.orders.>
    dead letters    deadletter.orders    → stream   t1_deadletter (an ordinary stream)

Stream names keep the token's case, so the mapping is one to one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from stockflow_kit.messaging.bus import stream_of

__all__ = ["JetStreamNaming", "JetStreamOptions", "check_durable_name", "parse_jetstream_url"]

_PREFIX: Final = re.compile(r"^[A-Za-z0-9-]{1,32}$")
_NAME: Final = re.compile(r"^[^.*>\s/\\]+$")  # a valid stream or consumer name and subject token
_FLOAT_OPTIONS: Final = {"duplicate_window": 120.0, "timeout": 5.0, "reconnect_wait": 0.5}


@dataclass(frozen=True, slots=True)
class JetStreamNaming:
    """Maps kit topics to NATS subjects and stream names.

    Args:
        prefix: The isolating prefix; ``""`` for none.
    """

    prefix: str = ""

    def subject(self, topic: str, *, wildcard: bool = False) -> str:
        """Return the NATS subject for *topic*; with *wildcard*, ``"<stream>.>"`` is allowed.

        Raises:
            ValueError: for an empty token, or a wildcard where none is allowed.
        """
        self.stream_token(topic)
        tokens = topic.split(".")
        if any(not token or "*" in token or (">" in token and not wildcard) for token in tokens):
            msg = f"invalid topic {topic!r}: empty token or misplaced wildcard"
            raise ValueError(msg)
        if wildcard and ">" in topic and not (topic.endswith(".>") and topic.count(">") == 1):
            msg = f"invalid topic {topic!r}: '>' only as the last token"
            raise ValueError(msg)
        return f"{self.prefix}.{topic}" if self.prefix else topic

    def topic(self, subject: str) -> str:
        """Return the topic of a NATS *subject* produced by :meth:`subject`."""
        return subject[len(self.prefix) + 1 :] if self.prefix else subject

    def stream_token(self, topic: str) -> str:
        """Return the stream token of *topic* after checking it is a valid name."""
        token = stream_of(topic)
        if not _NAME.match(token):
            msg = f"invalid topic {topic!r}: its first token must be a plain name"
            raise ValueError(msg)
        return token

    def stream(self, token: str) -> str:
        """Return the JetStream stream name for the stream *token*."""
        return f"{self.prefix}_{token}" if self.prefix else token

    def stream_subjects(self, token: str) -> list[str]:
        """Return the subjects the stream of *token* captures."""
        base = self.subject(token)
        return [base, f"{base}.>"]


def check_durable_name(durable: str) -> str:
    """Return *durable* if it is a valid consumer name, else raise :class:`ValueError`."""
    if not _NAME.match(durable):
        msg = f"invalid durable name {durable!r}: no dots, wildcards, spaces or slashes"
        raise ValueError(msg)
    return durable


@dataclass(frozen=True, slots=True)
class JetStreamOptions:
    """Settings of one :class:`~stockflow_kit.messaging.jetstream.JetStreamBus`, from its URL."""

    servers: tuple[str, ...]
    naming: JetStreamNaming
    duplicate_window: float = 120.0
    timeout: float = 5.0
    reconnect_wait: float = 0.5
    replicas: int = 1


def parse_jetstream_url(url: str) -> JetStreamOptions:
    """Parse a ``nats://`` or ``tls://`` bus URL (see the module docstring).

    Raises:
        ValueError: for another scheme, no host, an unknown option or a bad value.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"nats", "tls"} or not parts.netloc:
        msg = f"not a NATS URL: {url!r} (expected nats://host:port[?prefix=...])"
        raise ValueError(msg)
    servers = tuple(f"{parts.scheme}://{host}" for host in parts.netloc.split(",") if host)
    query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
    unknown = set(query) - {"prefix", "replicas", *_FLOAT_OPTIONS}
    if unknown:
        msg = f"unknown NATS bus option(s) {sorted(unknown)} in {url!r}"
        raise ValueError(msg)
    prefix = query.get("prefix", "")
    if prefix and not _PREFIX.match(prefix):
        msg = f"invalid prefix {prefix!r}: 1-32 letters, digits or '-'"
        raise ValueError(msg)
    replicas = query.get("replicas", "1")
    if replicas not in {"1", "2", "3", "4", "5"}:
        msg = f"invalid replicas {replicas!r}: 1 to 5"
        raise ValueError(msg)
    numbers = {name: float(query.get(name, default)) for name, default in _FLOAT_OPTIONS.items()}
    if any(not value > 0 for value in numbers.values()):
        msg = f"NATS bus options must be positive numbers: {numbers}"
        raise ValueError(msg)
    return JetStreamOptions(
        servers=servers,
        naming=JetStreamNaming(prefix),
        duplicate_window=numbers["duplicate_window"],
        timeout=numbers["timeout"],
        reconnect_wait=numbers["reconnect_wait"],
        replicas=int(replicas),
    )
