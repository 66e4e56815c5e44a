"""write_json_line: the access log's direct path writes what structlog's chain writes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from datetime import datetime
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from structlog.testing import capture_logs

from stockflow_kit.observability import REDACTED, bind_correlation, configure_logging
from stockflow_kit.observability.logs import write_json_line

FIELDS: dict[str, Any] = {"method": "GET", "status": 200, "duration_ms": 0.25, "client": None}


def _without_timestamp(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k != "timestamp"}


def test_the_line_is_the_one_structlog_writes(log_lines) -> None:
    configure_logging(json=True, service="orders", stream=log_lines.stream)
    structlog.contextvars.bind_contextvars(tenant="t-1", api_key="k-123")
    try:
        with bind_correlation("corr-12345678", causation_id="msg-1"):
            assert write_json_line("orders.http", logging.INFO, "http.done", dict(FIELDS))
            structlog.get_logger("orders.http").info("http.done", **FIELDS)
    finally:
        structlog.contextvars.clear_contextvars()

    direct, chained = log_lines.records()
    assert _without_timestamp(direct) == _without_timestamp(chained)
    assert direct["api_key"] == REDACTED
    assert direct["correlation_id"] == "corr-12345678"
    assert direct["causation_id"] == "msg-1"
    assert direct["service"] == "orders"
    assert direct["level"] == "info"
    assert direct["timestamp"].endswith("Z")


def test_an_error_line_and_the_level_filter(log_lines) -> None:
    configure_logging(json=True, level="warning", stream=log_lines.stream)

    assert write_json_line("x", logging.INFO, "quiet", {})  # dropped, and handled
    assert write_json_line("x", logging.ERROR, "loud", {"status": 500})

    [line] = log_lines.records()
    assert (line["event"], line["level"], line["status"]) == ("loud", "error", 500)


def test_the_json_copy_gets_the_line_too(log_lines) -> None:
    copy = io.StringIO()
    configure_logging(json=True, stream=log_lines.stream, also_json_to=copy)

    assert write_json_line("x", logging.INFO, "copied", {"n": 1})

    [line] = log_lines.records()
    assert json.loads(copy.getvalue()) == line


def test_without_the_kit_json_output_the_caller_logs_through_structlog(log_lines) -> None:
    configure_logging(json=False, stream=log_lines.stream)
    assert not write_json_line("x", logging.INFO, "console", {})

    configure_logging(json=True, stream=log_lines.stream)
    fields = {"status": 200}
    with capture_logs() as captured:
        assert not write_json_line("x", logging.INFO, "captured", fields)
    assert captured == []
    assert fields == {"status": 200}
    assert log_lines.stream.getvalue() == ""


class CountedWrites(io.BytesIO):
    """A binary stream that counts its writes."""

    writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        return super().write(data)


async def test_the_lines_of_one_loop_pass_are_one_write_and_keep_their_order(log_lines) -> None:
    raw = CountedWrites()
    stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    configure_logging(json=True, stream=stream)
    try:
        for n in range(50):
            assert write_json_line("x", logging.INFO, "access", {"n": n})
        assert raw.writes == 0  # kept until the loop has run what is ready
        await asyncio.sleep(0)
        assert raw.writes == 1
        assert [json.loads(line)["n"] for line in raw.getvalue().splitlines()] == list(range(50))

        # A line of structlog's chain (or a standard-library record) writes what waits first.
        write_json_line("x", logging.INFO, "access", {"n": 50})
        structlog.get_logger("x").info("chained", n=51)
        logging.getLogger("std").warning("stdlib")
        lines = [json.loads(line) for line in raw.getvalue().splitlines()]
        assert [line["event"] for line in lines[-3:]] == ["access", "chained", "stdlib"]
    finally:
        configure_logging(json=True, stream=log_lines.stream)


def test_without_a_running_loop_a_line_is_written_at_once(log_lines) -> None:
    raw = CountedWrites()
    stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    configure_logging(json=True, stream=stream)
    try:
        assert write_json_line("x", logging.INFO, "access", {"n": 1})
        assert raw.writes == 1
        assert json.loads(raw.getvalue())["n"] == 1
    finally:
        configure_logging(json=True, stream=log_lines.stream)


async def test_a_line_is_formatted_later_with_the_context_and_the_time_of_its_call(
    log_lines,
) -> None:
    raw = CountedWrites()
    stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    configure_logging(json=True, stream=stream, service="svc")
    provider = TracerProvider()
    try:
        # A first line, outside: the loop's drain is scheduled in (and would run in) its context.
        assert write_json_line("x", logging.INFO, "first", {"n": 0})
        with bind_correlation("req-12345678"):
            bound = structlog.contextvars.bind_contextvars(user="alice", api_token="s3cret")
            span = provider.get_tracer("test").start_span("request")
            with trace.use_span(span, end_on_exit=True):
                before = time.time_ns()
                assert write_json_line("x", logging.INFO, "access", {"n": 1}, safe_fields=True)
                after = time.time_ns()
            structlog.contextvars.reset_contextvars(**bound)
        # Everything the line reads from its context has changed before it is formatted.
        later = structlog.contextvars.bind_contextvars(user="mallory")
        assert raw.writes == 0
        await asyncio.sleep(0)
        structlog.contextvars.reset_contextvars(**later)

        first, line = map(json.loads, raw.getvalue().splitlines())
        assert "user" not in first
        assert line["correlation_id"] == "req-12345678"
        assert line["user"] == "alice"
        assert line["api_token"] == REDACTED  # the context's keys are still checked
        assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
        assert line["service"] == "svc"
        written = datetime.fromisoformat(line["timestamp"]).timestamp() * 1e9
        assert before // 1000 * 1000 <= written <= after
    finally:
        provider.shutdown()
        configure_logging(json=True, stream=log_lines.stream)
