"""Pick a bus backend from a URL: ``memory://``, ``sqlite:///path/bus.sqlite3``, ``nats://host:port``
or ``kafka://host:port``.

This is the one place that maps configuration to an adapter; bootstraps call it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from stockflow_kit.messaging.bus import Bus

__all__ = ["make_bus"]


def make_bus(url: str, *, name: str = "stockflow") -> Bus:
    """Return an unstarted bus for *url* (``await bus.start()`` before use).

    Args:
        url: ``memory://`` (tests, one process), ``sqlite:///<path>`` (embedded, durable),
            ``nats://host:port`` (NATS JetStream), ``kafka://host:port`` (a Kafka-protocol
            broker, :mod:`~stockflow_kit.messaging.kafka`).
        name: A name for the client connection and metrics labels.

    Raises:
        ValueError: for an unsupported scheme, naming the supported ones.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from stockflow_kit.messaging.memory import InMemoryBus

        return InMemoryBus()
    if scheme == "sqlite":
        from stockflow_kit.messaging.sqlite_log import SqliteLogBus

        return SqliteLogBus(url)
    if scheme in {"nats", "tls"}:
        from stockflow_kit.messaging.jetstream import JetStreamBus

        return JetStreamBus(url, name=name)
    if scheme == "kafka":
        from stockflow_kit.messaging.kafka import KafkaBus

        return KafkaBus(url, name=name)
    msg = (
        f"unsupported bus URL {url!r}: use memory://, sqlite:///<path>, nats://host:port"
        " or kafka://host:port"
    )
    raise ValueError(msg)
