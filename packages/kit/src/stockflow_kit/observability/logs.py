"""Structured logging: one format for our log lines and for the standard library's.

:func:`configure_logging` sets up two paths to one root handler and its stream:

* structlog's lines (ours: the access log, the bus, the services) are rendered by structlog
  itself and written straight to the stream: a level-filtering bound logger (a call below
  the level is a bare ``return``), one processor chain, a msgspec JSON encoder, no
  :class:`logging.LogRecord` on the way;
* the standard library's records (uvicorn, asyncio, libraries) reach the same stream through
  a :class:`structlog.stdlib.ProcessorFormatter` with the same processors.

Both come out in one format: JSON lines for machines, or a coloured console for people. Every
line gets an ISO-8601 UTC ``timestamp``, ``level``, ``logger``, the ``correlation_id`` (and
``causation_id``) bound in :mod:`stockflow_kit.observability.correlation`, and the
``trace_id``/``span_id`` of the current OpenTelemetry span; secrets are replaced by
:data:`REDACTED`; uvicorn's ``color_message`` (the message again, with ANSI colours) is
dropped. The processors are plain callables and can be used on their own.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final, TextIO

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from stockflow_kit.observability._redaction import (
    REDACTED,
    SENSITIVE_KEYS,
    is_sensitive_key,
    redact_secrets,
)
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
    "write_json_line",
]

# uvicorn installs its own handlers on these (with propagate=False) unless started with
# log_config=None; we send them back to the root handler so they share our format.
_SERVER_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")
_SERVER_ACCESS_LOGGER: Final = "uvicorn.access"
_CLIENT_LOGGERS: Final = ("httpx", "httpcore")
"""httpx logs every request it sends at INFO: one line per outgoing call, on every hop, which
the resilient client's metrics and spans already record. Only WARNING and up, unless DEBUG."""
_encoder: Final = msgspec.json.Encoder(enc_hook=repr)
_LEVEL_NAMES: Final = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
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
    if "trace_id" not in event_dict:
        for key, value in current_trace_ids().items():
            event_dict.setdefault(key, value)
    return event_dict


def _drop_color_message(
    _logger: WrappedLogger, _method_name: str, event_dict: EventDict
) -> EventDict:
    """A structlog processor that removes uvicorn's ``color_message`` extra.

    uvicorn passes its message a second time, with ANSI colour escapes, as
    ``extra={"color_message": ...}``; the line already has the plain ``event``.
    """
    event_dict.pop("color_message", None)
    return event_dict


class _UtcTimestamper:
    """Add ``timestamp`` as ISO-8601 UTC with microseconds (``2026-01-31T12:00:00.123456Z``).

    What ``TimeStamper(fmt="iso", utc=True)`` writes, for a third of its cost: the date and
    time down to the second are formatted once per second, not once per line.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(
        self, _logger: WrappedLogger, _method_name: str, event_dict: EventDict
    ) -> EventDict:
        event_dict["timestamp"] = self.at(time.time_ns())
        return event_dict

    def at(self, ns: int) -> str:
        """The timestamp of *ns* nanoseconds since the epoch."""
        second, micros = divmod(ns // 1000, 1_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            self._second = second
        return f"{self._prefix}{micros:06d}Z"


def _add_service(service: str) -> Processor:
    def add_service(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def _render_json(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> str:
    return _encode_json(_logger, _method_name, event_dict).decode()


def _encode_json(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> bytes:
    # msgspec is several times faster than json.dumps on a log line; anything it cannot
    # encode natively becomes its repr(), as structlog's JSONRenderer does. What msgspec
    # refuses all the same takes the slower standard-library path.
    try:
        return _encoder.encode(event_dict)
    except TypeError:
        line = structlog.processors.JSONRenderer(default=repr)(logger, method_name, event_dict)
        return line.encode() if isinstance(line, str) else line


_DEFER_RECORDS: Final = 256
"""Deferred lines are formatted and written at once when this many are waiting."""

_Record = tuple[contextvars.Context, dict[str, Any], str, bool, int]
"""A deferred line: the context it was written in, its fields, level, safe_fields, time_ns."""
_Format = Callable[[dict[str, Any], str, bool, int], bytes]


class _KitHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler we own; replaced, never duplicated, by the next configuration.

    Lines of :func:`write_json_line` written on an event loop (the access log: one per
    request) are deferred: what the line needs is kept (its fields, a snapshot of the
    context variables, which is O(1), and the time), and the lines are formatted and written
    with one ``write`` when the loop has run what is ready now (``call_soon``), or once 256
    wait. Each is formatted in the context it was written in, with the time it was written
    at, so it is the line an immediate write would have been; the request's path only
    records, and the formatting runs in one tight loop per pass. Under load one system call
    then carries the lines of every request that finished in one pass of the loop, instead
    of a write and a flush per request; idle, a line is written at once, one pass later. Any
    other line (structlog's chain, a standard-library record) first writes what waits, so
    the order of lines is kept; so do :meth:`flush`, :meth:`close` and the interpreter's exit
    (``logging.shutdown``). A SIGKILL loses at most the lines of the last pass.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.pending = bytearray()
        self.records: list[_Record] = []
        self.format_record: _Format | None = None
        self.drain_scheduled = False

    def defer(self, record: _Record) -> None:
        """Keep *record* for the next drain (on the running loop), or write it now."""
        self.acquire()
        try:
            self.records.append(record)
            if len(self.records) >= _DEFER_RECORDS:
                self.drain()
            elif not self.drain_scheduled:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop in this thread: nothing would drain it
                    self.drain()
                    return
                self.drain_scheduled = True
                loop.call_soon(self.drain_scheduled_lines)
        finally:
            self.release()

    def drain_scheduled_lines(self) -> None:
        self.drain_scheduled = False
        self.drain_locked()

    def drain_locked(self) -> None:
        """:meth:`drain` under the handler's lock."""
        self.acquire()
        try:
            self.drain()
        finally:
            self.release()

    def drain(self) -> None:
        """Write the waiting lines (the caller holds the lock, or nobody else writes)."""
        if self.records:
            records, self.records = self.records, []
            format_record = self.format_record
            if format_record is not None:
                for context, fields, level_name, safe, ns in records:
                    self.pending += context.run(format_record, fields, level_name, safe, ns)
        if not self.pending:
            return
        data, self.pending = bytes(self.pending), bytearray()
        stream = self.stream
        try:
            buffer = getattr(stream, "buffer", None)
            if buffer is None:
                stream.write(data.decode())
                stream.flush()
            else:
                # Text written through the stream was flushed after each line: the bytes
                # go after it, without a decode and a second encode.
                buffer.write(data)
                buffer.flush()
        except (OSError, ValueError):
            # A closed or broken stream (a pipe whose reader went away) loses the lines but
            # never fails the request that logged them, as with the logging module's handlers.
            pass

    def emit(self, record: logging.LogRecord) -> None:
        self.drain()  # Handler.handle holds the lock
        super().emit(record)

    def flush(self) -> None:
        self.drain_locked()
        super().flush()

    def close(self) -> None:
        self.drain_locked()
        super().close()


class _LineWriter:
    """structlog's logger: writes each rendered line to the handler's stream, under its lock.

    Sharing the handler's lock keeps a structlog line and a standard-library record from
    interleaving. ``name`` is the logger name given to :func:`structlog.get_logger`. A
    stream that cannot be written loses the line instead of raising into the caller.
    """

    def __init__(self, handler: _KitHandler, name: str) -> None:
        self._handler = handler
        self.name = name

    def msg(self, line: str) -> None:
        handler = self._handler
        handler.acquire()
        try:
            handler.drain()
            stream = handler.stream
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            # A closed or broken stream (a pipe whose reader went away) loses the line but
            # never fails the request that logged it, as with the logging module's handlers.
            pass
        finally:
            handler.release()

    debug = info = warning = error = critical = msg


class _LineWriterFactory:
    def __init__(self, handler: _KitHandler) -> None:
        self._handler = handler
        self._writers: dict[str, _LineWriter] = {}

    def __call__(self, *args: Any) -> _LineWriter:
        name = str(args[0]) if args and args[0] is not None else ""
        writer = self._writers.get(name)
        if writer is None:
            writer = self._writers.setdefault(name, _LineWriter(self._handler, name))
        return writer


class _JsonCopy:
    """A last processor that also writes the line, as JSON, to a file (``also_json_to``), then
    hands the event on to the renderer of the stream; a file that cannot be written loses the
    copy, never the line."""

    def __init__(self, file: TextIO, renderer: Processor) -> None:
        self._file = file
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
        copy = structlog.processors.format_exc_info(logger, method_name, dict(event_dict))
        line = _render_json(logger, method_name, copy)
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except (OSError, ValueError):
            pass
        return self._renderer(logger, method_name, event_dict)


class _JsonLines:
    """The direct path of :func:`write_json_line`: what :func:`configure_logging` set up."""

    def __init__(
        self,
        *,
        processors: list[Processor],
        level: int,
        service: str | None,
        handler: _KitHandler,
        copy_to: TextIO | None,
    ) -> None:
        self.processors = processors
        self.count = len(processors)
        self.renderer = processors[-1]
        self.level = level
        self.service = service
        self.handler = handler
        self.copy_to = copy_to
        self.timestamper = _UtcTimestamper()
        handler.format_record = self.format_line

    def in_use(self) -> bool:
        # structlog.testing.capture_logs changes the configured list in place: the renderer
        # it ends with tells whether the chain is still this configuration's.
        processors = structlog.get_config()["processors"]
        return (
            processors is self.processors
            and len(processors) == self.count
            and processors[-1] is self.renderer
        )

    def format_line(self, fields: dict[str, Any], level_name: str, safe: bool, ns: int) -> bytes:
        """One line of :func:`write_json_line`, run in the context it was written in."""
        if safe:
            bound = structlog.contextvars.merge_contextvars(None, level_name, {})
            if bound:
                for key, value in redact_secrets(None, level_name, bound).items():
                    fields.setdefault(key, value)
        else:
            structlog.contextvars.merge_contextvars(None, level_name, fields)
        fields["timestamp"] = self.timestamper.at(ns)
        add_correlation_ids(None, level_name, fields)
        add_trace_ids(None, level_name, fields)
        if self.service is not None:
            fields.setdefault("service", self.service)
        # What the kit adds (timestamp, ids, service, level) is never a secret.
        line = _encode_json(
            None, level_name, fields if safe else redact_secrets(None, level_name, fields)
        )
        line += b"\n"
        if self.copy_to is not None:
            try:
                self.copy_to.write(line.decode())
                self.copy_to.flush()
            except (OSError, ValueError):
                pass
        return line


_json_lines: _JsonLines | None = None


def write_json_line(
    logger: str, level: int, event: str, fields: dict[str, Any], *, safe_fields: bool = False
) -> bool:
    """Write one line straight to the stream :func:`configure_logging` set up, as JSON.

    The line is what ``structlog.get_logger(logger).<level>(event, **fields)`` writes (the
    same keys: structlog's context variables, ``correlation_id``, ``causation_id``,
    ``trace_id``/``span_id``, ``service``, ``timestamp``, secrets redacted), without the
    bound logger and the processor chain: for lines written on every request, such as the
    access log. *fields* are scalars (no exception, no stack) and the dictionary becomes the
    line's (it is changed). With *safe_fields*, the caller vouches that no key of *fields*
    names a secret and every value is a scalar (the access log's fields): they skip the
    redaction check, which the context variables merged in still get.

    On an event loop the line is formatted when the loop has run what is ready (in a
    snapshot of this call's context, with this call's time) and written with the other lines
    of that pass: the caller only records it. See ``_KitHandler``.

    Returns:
        ``True`` when the line was written, or dropped below the configured level;
        ``False`` when the configuration is not the kit's JSON output (a console renderer,
        another structlog configuration such as ``structlog.testing.capture_logs``): the
        caller logs through structlog instead, and *fields* are as it gave them.
    """
    lines = _json_lines
    if lines is None or not lines.in_use():
        return False
    if level < lines.level:
        return True
    level_name = _LEVEL_NAMES.get(level)
    if level_name is None:
        return False
    fields["event"] = event
    fields["logger"] = logger
    fields["level"] = level_name
    # Formatted later, in this context and with this time: see _KitHandler.
    lines.handler.defer(
        (contextvars.copy_context(), fields, level_name, safe_fields, time.time_ns())
    )
    return True


def configure_logging(
    *,
    json: bool | None = None,
    level: str | int = "INFO",
    service: str | None = None,
    stream: TextIO | None = None,
    server_access_log: bool = False,
    also_json_to: TextIO | None = None,
) -> None:
    """Configure structlog and the standard library's logging to write one format.

    Call it once from a composition root; calling it again replaces the previous
    configuration (it never adds a second handler), and reaches loggers already created at
    module level (structlog's loggers are not cached on first use for that reason: the
    per-call cost of that is measured in ``docs/benchmarks.md``). Handlers that others
    installed on the root logger (pytest's, for example) are left alone. The uvicorn
    loggers are sent to the root handler; start uvicorn with ``log_config=None`` so that it
    does not reinstall its own. uvicorn's own access log is switched off (unless
    *server_access_log*), whether this runs before or after uvicorn reads its
    configuration: :class:`~stockflow_kit.http.MetricsMiddleware` writes the access log,
    and a second line per request would double its cost.

    Args:
        json: ``True`` for JSON lines, ``False`` for the human console renderer. ``None``
            (the default) picks JSON unless *stream* is a terminal.
        level: The lowest level written, as a name (``"debug"``, ``"INFO"``) or a number.
            ``"INFO"`` by default.
        service: When given, added to every line as ``service`` (unless the line already
            has one, as lines bound by the HTTP middleware of a named service do).
        stream: Where lines go; :data:`sys.stderr` at call time when ``None`` (the
            default), which keeps standard output free for a CLI's results.
        server_access_log: Keep uvicorn's ``uvicorn.access`` lines; ``False`` by default.
        also_json_to: When given, every line is written there too, as JSON, whatever the
            format of *stream* (``stockflow up --log-file``; what ``stockflow trace`` reads).

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
        _UtcTimestamper(),
        add_correlation_ids,
        add_trace_ids,
    ]
    if service is not None:
        shared.append(_add_service(service))
    shared.append(redact_secrets)

    renderer: list[Processor]
    if render_json:
        renderer = [structlog.processors.format_exc_info, _render_json]
    else:
        # ConsoleRenderer formats exceptions itself (and warns if format_exc_info ran first).
        renderer = [structlog.dev.ConsoleRenderer(colors=_isatty(out))]
    if also_json_to is not None:
        renderer = [*renderer[:-1], _JsonCopy(also_json_to, renderer[-1])]

    handler = _KitHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_color_message],
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
        server_logger.propagate = server_access_log or name != _SERVER_ACCESS_LOGGER
    for name in _CLIENT_LOGGERS:
        quiet = logging.WARNING if numeric_level > logging.DEBUG else logging.NOTSET
        logging.getLogger(name).setLevel(quiet)

    processors: list[Processor] = [
        *shared,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.UnicodeDecoder(),
        *renderer,
    ]
    writer = _LineWriterFactory(handler)
    structlog.configure(
        processors=processors,
        logger_factory=writer,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=False,
    )
    global _json_lines  # the configuration is process-wide, as structlog's
    _json_lines = (
        _JsonLines(
            processors=processors,
            level=numeric_level,
            service=service,
            handler=handler,
            copy_to=also_json_to,
        )
        if render_json
        else None
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
