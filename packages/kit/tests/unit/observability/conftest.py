"""Fixtures for the observability tests: captured log output and clean OpenTelemetry globals."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore")


class LogLines:
    """A stream for configure_logging() and the JSON lines written to it."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == event]


def _snapshot(logger: logging.Logger) -> tuple[list[logging.Handler], int, bool]:
    return list(logger.handlers), logger.level, logger.propagate


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Where configure_logging() writes; the stdlib logging configuration is restored after."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved_servers = {name: _snapshot(logging.getLogger(name)) for name in _SERVER_LOGGERS}
    yield LogLines()
    for handler in list(root.handlers):
        if handler not in saved_root[0]:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved_root[1])
    for name, (handlers, level, propagate) in saved_servers.items():
        server_logger = logging.getLogger(name)
        server_logger.handlers[:] = handlers
        server_logger.setLevel(level)
        server_logger.propagate = propagate


@pytest.fixture
def fresh_tracing_globals() -> Iterator[None]:
    """Let a test install the global tracer provider, and uninstall it afterwards.

    OpenTelemetry allows setting the provider once per process; its own test suite resets
    these private globals the same way.
    """
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done)
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE._done = False
    yield
    installed = trace._TRACER_PROVIDER
    if isinstance(installed, TracerProvider):
        installed.shutdown()
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done = saved
