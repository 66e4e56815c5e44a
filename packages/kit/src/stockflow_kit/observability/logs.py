"""Structured logging: one structlog chain for our log lines and for the standard library's.

:func:`configure_logging` sets up structlog on top of :mod:`logging`, with a
:class:`structlog.stdlib.ProcessorFormatter` on one root handler. Log lines from structlog and
from stdlib loggers (uvicorn, asyncio, libraries) then go through the same processors and
come out in one format: JSON lines for machines, or a coloured console for people.

Every line gets an ISO-8601 UTC ``timestamp``, ``level``, ``logger``, the ``correlation_id``
(and ``causation_id``) bound in :mod:`stockflow_kit.observability.correlation`, and the
``trace_id``/``span_id`` of the current OpenTelemetry span; secrets are replaced by
:data:`REDACTED`. The processors are plain callables and can be used on their own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from stockflow_kit.observability.correlation import get_causation_id, get_correlation_id
from stockflow_kit.observability.tracing import current_trace_ids

__all__ = [
    "REDACTED",
    "SENSITIVE_KEYS",
    "add_correlation_ids",
    "add_trace_ids",
    "configure_logging",
    "is_sensitive_key",
    "redact_secrets",
]

REDACTED: Final = "[REDACTED]"
"""What a secret value is replaced with."""

SENSITIVE_KEYS: Final = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "passwd",
        "password",
        "refresh_token",
        "secret",
        "set_cookie",
        "token",
    }
)
"""Normalised key names whose values are never logged; see :func:`is_sensitive_key`."""

_MAX_DEPTH: Final = 8
# uvicorn installs its own handlers on these (with propagate=False) unless started with
# log_config=None; we send them back to the root handler so they share our format.
_SERVER_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")


def is_sensitive_key(key: object) -> bool:
    """Tell whether values under *key* must be redacted.

    The key is lowercased and ``-`` becomes ``_``; it is sensitive when it equals one of
    :data:`SENSITIVE_KEYS` or ends with ``_`` plus one of them. So ``Authorization``,
    ``Set-Cookie``, ``X-Api-Key`` and ``client_secret`` are sensitive; ``sku`` and
    ``token_count`` are not. ``bytes`` keys (raw ASGI headers) are decoded as Latin-1.
    """
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return name in SENSITIVE_KEYS or any(name.endswith("_" + s) for s in SENSITIVE_KEYS)


def _redact(value: object, depth: int) -> object:
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_sensitive_key(k) else _redact(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        items = [_redact_item(item, depth + 1) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def _redact_item(item: object, depth: int) -> object:
    # A (name, value) pair, as in ASGI's raw header list or httpx's multi_items().
    if isinstance(item, tuple) and len(item) == 2 and is_sensitive_key(item[0]):
        return (item[0], REDACTED)
    return _redact(item, depth)


def redact_secrets(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
    """A structlog processor that replaces secret values with :data:`REDACTED`.

    Top-level keys, keys of nested mappings (including header objects such as
    :class:`starlette.datastructures.Headers` or :class:`httpx.Headers`, which come out as
    plain dicts) and ``(name, value)`` pairs inside lists and tuples are checked with
    :func:`is_sensitive_key`. Containers are copied, never modified in place; nesting deeper
    than eight levels is left as is.
    """
    return {
        key: REDACTED if is_sensitive_key(key) else _redact(value, 0)
        for key, value in event_dict.items()
    }


def add_correlation_ids(
    _logger: WrappedLogger, _method_name: str, event_dict: EventDict
) -> EventDict:
    """A structlog processor that adds the bound ``correlation_id`` and ``causation_id``.

    Values already in the event win; unbound ids are left out.
    """
    correlation_id = get_correlation_id()
    if correlation_id is not None:
        event_dict.setdefault("correlation_id", correlation_id)
    causation_id = get_causation_id()
    if causation_id is not None:
        event_dict.setdefault("causation_id", causation_id)
    return event_dict


def add_trace_ids(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
    """A structlog processor that adds ``trace_id`` and ``span_id`` of the current span.

    Nothing is added without a valid span; values already in the event win.
    """
    for key, value in current_trace_ids().items():
        event_dict.setdefault(key, value)
    return event_dict


def _add_service(service: str) -> Processor:
    def add_service(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


class _KitHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler we own; replaced, never duplicated, by the next configuration."""


def configure_logging(
    *,
    json: bool | None = None,
    level: str | int = "INFO",
    service: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the standard library's logging to write one format.

    Call it once from a composition root; calling it again replaces the previous
    configuration (it never adds a second handler). Handlers that others installed on the
    root logger (pytest's, for example) are left alone. The uvicorn loggers are sent to the
    root handler; start uvicorn with ``log_config=None`` so that it does not reinstall its
    own, and with ``access_log=False`` since :class:`~stockflow_kit.http.MetricsMiddleware`
    writes the access log.

    Args:
        json: ``True`` for JSON lines, ``False`` for the human console renderer. ``None``
            (the default) picks JSON unless *stream* is a terminal.
        level: The lowest level written, as a name (``"debug"``, ``"INFO"``) or a number.
            ``"INFO"`` by default.
        service: When given, added to every line as ``service`` (unless the line already
            has one, as lines bound by the HTTP middleware of a named service do).
        stream: Where lines go; :data:`sys.stderr` at call time when ``None`` (the
            default), which keeps standard output free for a CLI's results.

    Raises:
        ValueError: *level* is not a logging level.
    """
    numeric_level = _level_number(level)
    out = sys.stderr if stream is None else stream
    render_json = not _isatty(out) if json is None else json

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_correlation_ids,
        add_trace_ids,
    ]
    if service is not None:
        shared.append(_add_service(service))
    shared.append(redact_secrets)

    renderer: list[Processor]
    if render_json:
        renderer = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        # ConsoleRenderer formats exceptions itself (and warns if format_exc_info ran first).
        renderer = [structlog.dev.ConsoleRenderer(colors=_isatty(out))]

    handler = _KitHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _KitHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.setLevel(logging.NOTSET)
        server_logger.propagate = True

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached, so that a later configure_logging() reaches module-level loggers too.
        cache_logger_on_first_use=False,
    )


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        msg = f"unknown log level: {level!r}"
        raise ValueError(msg)
    return number


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False
