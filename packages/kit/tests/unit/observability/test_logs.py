from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from starlette.datastructures import Headers

from stockflow_kit.observability import (
    REDACTED,
    bind_correlation,
    configure_logging,
    is_sensitive_key,
    redact_secrets,
)


def _redact(**event: Any) -> dict[str, Any]:
    return redact_secrets(None, "info", event)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_are_json_with_level_logger_and_a_utc_iso_timestamp(log_lines) -> None:
    configure_logging(json=True, stream=log_lines.stream)

    structlog.get_logger("orders").info("orders.order_placed", order_id="o-1")

    [line] = log_lines.records()
    assert line["event"] == "orders.order_placed"
    assert line["order_id"] == "o-1"
    assert line["level"] == "info"
    assert line["logger"] == "orders"
    assert line["timestamp"].endswith("Z")
    assert "T" in line["timestamp"]


def test_lines_below_the_level_are_dropped(log_lines) -> None:
    configure_logging(json=True, level="warning", stream=log_lines.stream)
    log = structlog.get_logger("t")

    log.info("t.ignored")
    log.warning("t.kept")

    assert [r["event"] for r in log_lines.records()] == ["t.kept"]


def test_a_numeric_level_is_accepted_and_an_unknown_name_is_rejected(log_lines) -> None:
    configure_logging(json=True, level=logging.DEBUG, stream=log_lines.stream)
    structlog.get_logger("t").debug("t.debugged")
    assert [r["event"] for r in log_lines.records()] == ["t.debugged"]

    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="chatty", stream=log_lines.stream)


def test_correlation_and_causation_ids_are_on_every_line_while_bound(log_lines) -> None:
    configure_logging(json=True, stream=log_lines.stream)
    log = structlog.get_logger("t")

    with bind_correlation("corr-1234-abcd", causation_id="msg-5678-efgh"):
        log.info("t.inside")
    log.info("t.outside")

    inside, outside = log_lines.records()
    assert inside["correlation_id"] == "corr-1234-abcd"
    assert inside["causation_id"] == "msg-5678-efgh"
    assert "correlation_id" not in outside
    assert "causation_id" not in outside


def test_trace_and_span_ids_of_the_current_span_are_on_the_line(log_lines) -> None:
    configure_logging(json=True, stream=log_lines.stream)
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("work") as span:
        structlog.get_logger("t").info("t.traced")
    structlog.get_logger("t").info("t.untraced")

    traced, untraced = log_lines.records()
    context = span.get_span_context()
    assert traced["trace_id"] == f"{context.trace_id:032x}"
    assert traced["span_id"] == f"{context.span_id:016x}"
    assert "trace_id" not in untraced


def test_the_service_name_is_added_unless_the_line_has_one(log_lines) -> None:
    configure_logging(json=True, service="orders", stream=log_lines.stream)
    log = structlog.get_logger("t")

    log.info("t.default")
    log.info("t.explicit", service="edge")

    assert [r["service"] for r in log_lines.records()] == ["orders", "edge"]


def test_stdlib_and_uvicorn_records_come_out_in_the_same_json_format(log_lines) -> None:
    logging.getLogger("uvicorn.error").addHandler(logging.NullHandler())
    logging.getLogger("uvicorn.error").propagate = False
    configure_logging(json=True, stream=log_lines.stream)

    with bind_correlation("corr-1234-abcd"):
        logging.getLogger("uvicorn.error").warning("Started %s", "server")

    [line] = log_lines.records()
    assert line["event"] == "Started server"
    assert line["logger"] == "uvicorn.error"
    assert line["level"] == "warning"
    assert line["correlation_id"] == "corr-1234-abcd"


def test_exceptions_are_rendered_into_the_json_line(log_lines) -> None:
    configure_logging(json=True, stream=log_lines.stream)

    try:
        raise ValueError("broken")
    except ValueError:
        structlog.get_logger("t").exception("t.failed")

    [line] = log_lines.records()
    assert "ValueError: broken" in line["exception"]


def test_configuring_twice_replaces_the_handler_instead_of_adding_one(log_lines) -> None:
    first = io.StringIO()
    configure_logging(json=True, stream=first)
    configure_logging(json=True, stream=log_lines.stream)

    structlog.get_logger("t").info("t.once")

    assert first.getvalue() == ""
    assert len(log_lines.records()) == 1


def test_secrets_are_redacted_on_the_rendered_line(log_lines) -> None:
    configure_logging(json=True, stream=log_lines.stream)

    structlog.get_logger("t").info(
        "t.call", password="hunter2", headers={"Authorization": "Bearer x", "Accept": "*/*"}
    )

    [line] = log_lines.records()
    assert line["password"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "*/*"}


def test_a_terminal_gets_the_console_renderer_when_json_is_not_forced(log_lines) -> None:
    terminal = _Terminal()
    configure_logging(stream=terminal)

    structlog.get_logger("t").info("t.pretty", sku="SKU-1")

    output = terminal.getvalue()
    assert "t.pretty" in output
    assert not output.lstrip().startswith("{")


def test_a_non_terminal_gets_json_when_json_is_not_forced(log_lines) -> None:
    configure_logging(stream=log_lines.stream)

    structlog.get_logger("t").info("t.auto")

    assert log_lines.records()[0]["event"] == "t.auto"


def test_json_false_gives_the_console_renderer_even_on_a_pipe(log_lines) -> None:
    configure_logging(json=False, stream=log_lines.stream)

    try:
        raise ValueError("broken")
    except ValueError:
        structlog.get_logger("t").exception("t.console")

    output = log_lines.stream.getvalue()
    assert "t.console" in output
    assert "ValueError" in output


def test_the_default_stream_is_standard_error_at_call_time(log_lines, capsys) -> None:
    configure_logging(json=True)

    structlog.get_logger("t").info("t.stderr")

    captured = capsys.readouterr()
    assert "t.stderr" in captured.err
    assert captured.out == ""


def test_nested_mappings_header_objects_and_pairs_are_redacted() -> None:
    event = _redact(
        request={
            "headers": Headers({"cookie": "s=1", "x-api-key": "k", "accept": "a"}),
            "body": {"user": {"password": "p", "name": "n"}},
        },
        response_headers=httpx.Headers({"Set-Cookie": "s=2", "ETag": "e"}),
        raw=[(b"authorization", b"Bearer t"), (b"host", b"h")],
        pairs=(("client_secret", "s"), ("sku", "SKU-1")),
    )

    assert event["request"]["headers"] == {"cookie": REDACTED, "x-api-key": REDACTED, "accept": "a"}
    assert event["request"]["body"] == {"user": {"password": REDACTED, "name": "n"}}
    assert event["response_headers"] == {"set-cookie": REDACTED, "etag": "e"}
    assert event["raw"] == [(b"authorization", REDACTED), (b"host", b"h")]
    assert event["pairs"] == (("client_secret", REDACTED), ("sku", "SKU-1"))


def test_redaction_copies_instead_of_modifying_the_callers_objects() -> None:
    headers = {"Authorization": "Bearer x"}

    _redact(headers=headers, token="t")

    assert headers == {"Authorization": "Bearer x"}


def test_redaction_stops_at_a_depth_limit() -> None:
    deep: dict[str, Any] = {"password": "p"}
    for _ in range(12):
        deep = {"next": deep}

    redacted = _redact(payload=deep)

    node = redacted["payload"]
    while "next" in node:
        node = node["next"]
    assert node == {"password": "p"}


@pytest.mark.parametrize(
    "key",
    [
        "Authorization",
        "proxy-authorization",
        "Cookie",
        "Set-Cookie",
        "token",
        "access_token",
        "Refresh-Token",
        "csrf_token",
        "password",
        "db_password",
        "secret",
        "client_secret",
        "api_key",
        "X-Api-Key",
        b"authorization",
    ],
)
def test_keys_naming_secrets_are_sensitive(key: str | bytes) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", ["sku", "token_count", "tokens", "secretary", "event", 42, None])
def test_ordinary_keys_are_not_sensitive(key: object) -> None:
    assert not is_sensitive_key(key)


def _nested(depth: int) -> st.SearchStrategy[object]:
    """JSON-like values nested at most *depth* levels (well within the redaction limit)."""
    leaves = st.none() | st.integers() | st.text(max_size=5)
    if depth == 0:
        return leaves
    children = _nested(depth - 1)
    keys = st.sampled_from(["password", "Token", "sku", "x-api-key"])
    return leaves | st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3)


def _leaks(value: object) -> bool:
    if isinstance(value, dict):
        return any((is_sensitive_key(k) and v != REDACTED) or _leaks(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_leaks(v) for v in value)
    return False


@given(_nested(5))
def test_no_value_under_a_sensitive_key_survives_redaction(value: object) -> None:
    assert not _leaks(_redact(payload=value))


def test_uvicorns_color_message_is_dropped_from_json_lines(log_lines) -> None:
    configure_logging(json=True, stream=log_lines.stream)

    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )

    [line] = log_lines.records()
    assert line["event"] == "Started server process [42]"
    assert "color_message" not in line
    assert "\x1b" not in log_lines.stream.getvalue()


def test_structlog_and_stdlib_lines_share_the_stream_in_the_order_written(log_lines) -> None:
    configure_logging(json=True, stream=log_lines.stream)

    structlog.get_logger("ours").info("t.first")
    logging.getLogger("theirs").warning("t.second")
    structlog.get_logger("ours").error("t.third", password="p")

    lines = log_lines.records()
    assert [(r["event"], r["logger"], r["level"]) for r in lines] == [
        ("t.first", "ours", "info"),
        ("t.second", "theirs", "warning"),
        ("t.third", "ours", "error"),
    ]
    assert lines[2]["password"] == REDACTED


def test_values_json_cannot_encode_natively_are_written_as_their_repr(log_lines) -> None:
    configure_logging(json=True, stream=log_lines.stream)

    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    structlog.get_logger("t").info("t.odd", thing=Opaque(), by_number={1: "one"})

    [line] = log_lines.records()
    assert line["thing"] == "<opaque>"
    assert line["by_number"] == {"1": "one"}


def test_uvicorns_access_log_is_off_unless_asked_for(log_lines) -> None:
    access = logging.getLogger("uvicorn.access")
    configure_logging(json=True, stream=log_lines.stream)

    # uvicorn asks Logger.hasHandlers() once per connection, and skips its line if False.
    assert not access.hasHandlers()
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/", "1.1", 200)
    assert log_lines.records() == []

    configure_logging(json=True, stream=log_lines.stream, server_access_log=True)
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/", "1.1", 200)

    [line] = log_lines.records()
    assert line["logger"] == "uvicorn.access"


def test_timestamps_are_utc_iso_with_microseconds_and_follow_the_clock(log_lines) -> None:
    configure_logging(json=True, stream=log_lines.stream)
    before = datetime.now(UTC)

    for _ in range(3):
        structlog.get_logger("t").info("t.when")

    after = datetime.now(UTC)
    stamps = [r["timestamp"] for r in log_lines.records()]
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert before - timedelta(microseconds=1) <= parsed <= after
    assert stamps == sorted(stamps)


def test_a_stream_that_cannot_be_written_never_fails_the_caller(log_lines) -> None:
    closed = io.StringIO()
    configure_logging(json=True, stream=closed)
    closed.close()

    structlog.get_logger("t").info("t.lost")  # no ValueError from the closed stream

    configure_logging(json=True, stream=log_lines.stream)
    structlog.get_logger("t").info("t.kept")
    assert [r["event"] for r in log_lines.records()] == ["t.kept"]


def test_httpx_request_lines_are_dropped_at_info_and_kept_at_debug(log_lines) -> None:
    configure_logging(json=True, stream=log_lines.stream)
    logging.getLogger("httpx").info('HTTP Request: GET http://x/ "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("a client warning")
    assert [r["event"] for r in log_lines.records()] == ["a client warning"]

    configure_logging(json=True, level="DEBUG", stream=log_lines.stream)
    logging.getLogger("httpx").info("now kept")
    assert [r["event"] for r in log_lines.records()][-1] == "now kept"


def test_also_json_to_gets_every_line_as_redacted_json_whatever_the_stream_shows(
    log_lines,
) -> None:
    copy = io.StringIO()
    configure_logging(json=False, stream=log_lines.stream, service="orders", also_json_to=copy)

    structlog.get_logger("t").info("t.copied", sku="SKU-1", token="s3cret-token")
    logging.getLogger("uvicorn.error").warning("from the standard library")
    try:
        raise ValueError("broken")
    except ValueError:
        structlog.get_logger("t").exception("t.failed")

    console = log_lines.stream.getvalue()
    assert "t.copied" in console
    assert not console.lstrip().startswith("{")
    lines = [json.loads(line) for line in copy.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        "t.copied",
        "from the standard library",
        "t.failed",
    ]
    assert {line["service"] for line in lines} == {"orders"}
    assert lines[0]["token"] == REDACTED
    assert "ValueError: broken" in lines[2]["exception"]
    assert "s3cret-token" not in console + copy.getvalue()
