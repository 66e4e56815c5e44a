"""``stockflow trace CORRELATION_ID``: what one request did, for a person, from the embedded
deployment's data dir: the JSON log lines carrying the id (``stockflow.log``, written by
``stockflow up``) and the bus envelopes carrying it (``bus.sqlite3``), merged in time order.

Read-only: the log file is read line by line, the bus opened read-only (a running system is
not disturbed). Messages the embedded bus has trimmed (its retention) are no longer there.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec

from stockflow_kit.messaging.envelope import decode_envelope

__all__ = ["Story", "StoryStep", "TraceError", "carries", "read_story", "render"]

BUS_FILE: Final = "bus.sqlite3"
_DETAIL_KEYS: Final = (
    "method",
    "path",
    "status",
    "duration_ms",
    "subscription",
    "types",
    "error",
    "reason",
)


class TraceError(Exception):
    """The story cannot be told: the message says why and what to do."""


@dataclass(frozen=True)
class StoryStep:
    at: str
    """RFC 3339 UTC."""
    kind: str
    """``log`` (a log line) or ``message`` (a bus envelope)."""
    service: str
    what: str
    """The log event (``http.request_completed``) or the message type (``OrderPlaced``)."""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Story:
    correlation_id: str
    steps: list[StoryStep]
    services: list[str]
    """In the order they first appear."""
    messages: list[str]
    """The message types, in time order."""
    trace_ids: list[str]
    duration_ms: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def read_story(correlation_id: str, data_dir: Path, log_file: Path | None = None) -> Story:
    """The story of *correlation_id* in *data_dir* (and its *log_file*, by default
    ``<data_dir>/stockflow.log``).

    Raises:
        TraceError: no data dir there, neither a log file nor a bus in it, or the id is in
            neither.
    """
    from stockflow.runtime.embedded import LOG_FILE

    if not data_dir.is_dir():
        raise TraceError(
            f"no data dir at {data_dir}: give the --data-dir of `stockflow up` (default: data)"
        )
    log = data_dir / LOG_FILE if log_file is None else log_file
    bus = data_dir / BUS_FILE
    if not log.is_file() and not bus.is_file():
        raise TraceError(
            f"{data_dir} holds neither a log ({log.name}) nor a bus ({BUS_FILE}): is it the"
            " data dir of `stockflow up` (embedded)? Run it there first, or give --log-file."
        )
    steps = [*_log_steps(log, correlation_id), *_message_steps(bus, correlation_id)]
    if not steps:
        raise TraceError(
            f"correlation id {correlation_id!r} is in no log line ({log}) and no message"
            f" ({bus}). Check the id (the X-Correlation-ID response header, or the"
            " correlation_id of a problem); old messages may have been trimmed from the bus."
        )
    steps.sort(key=lambda step: _when(step.at))
    services: list[str] = []
    trace_ids: list[str] = []
    for step in steps:
        if step.service and step.service not in services:
            services.append(step.service)
        trace = step.detail.get("trace_id")
        if isinstance(trace, str) and trace not in trace_ids:
            trace_ids.append(trace)
    return Story(
        correlation_id=correlation_id,
        steps=steps,
        services=services,
        messages=[step.what for step in steps if step.kind == "message"],
        trace_ids=trace_ids,
        duration_ms=round((_when(steps[-1].at) - _when(steps[0].at)) * 1000, 3),
    )


def _log_steps(log: Path, correlation_id: str) -> list[StoryStep]:
    if not log.is_file():
        return []
    steps = []
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if correlation_id not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if not isinstance(entry, dict) or not carries(entry, correlation_id):
                    continue
                detail = {k: entry[k] for k in _DETAIL_KEYS if k in entry}
                if "trace_id" in entry:
                    detail["trace_id"] = entry["trace_id"]
                steps.append(
                    StoryStep(
                        at=_started(entry),
                        kind="log",
                        service=str(entry.get("service", "")),
                        what=str(entry.get("event", "")),
                        detail=detail,
                    )
                )
    return steps


def carries(entry: dict[str, Any], correlation_id: str) -> bool:
    """Whether the log line *entry* is about *correlation_id*: its ``correlation_id``, or one
    of the ``correlation_ids`` of a consumer's batch line."""
    if entry.get("correlation_id") == correlation_id:
        return True
    ids = entry.get("correlation_ids")
    return isinstance(ids, list) and correlation_id in ids


def _message_steps(bus: Path, correlation_id: str) -> list[StoryStep]:
    if not bus.is_file():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{bus}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT topic, published_at, body FROM bus_messages WHERE instr(body, ?) > 0"
                " ORDER BY seq",
                (correlation_id.encode(),),
            ).fetchall()
    except sqlite3.Error as error:
        raise TraceError(f"cannot read the bus {bus}: {error}") from error
    steps = []
    for topic, published_at, body in rows:
        try:
            envelope = decode_envelope(body)
        except msgspec.DecodeError:
            continue
        if envelope.correlation_id != correlation_id:
            continue
        steps.append(
            StoryStep(
                at=envelope.occurred_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                kind="message",
                service=envelope.source,
                what=envelope.type,
                detail={
                    "topic": topic,
                    "subject": envelope.subject,
                    "id": envelope.id,
                    "causation_id": envelope.causation_id,
                    "published_at": datetime.fromtimestamp(published_at).astimezone().isoformat(),
                },
            )
        )
    return steps


def _started(entry: dict[str, Any]) -> str:
    """When the line's work began: its ``timestamp`` less its ``duration_ms`` (a request or a
    batch is logged when it ends), so the steps sort in the order things started."""
    at = str(entry.get("timestamp", ""))
    took = entry.get("duration_ms")
    if not isinstance(took, int | float):
        return at
    with contextlib.suppress(ValueError):
        began = datetime.fromisoformat(at) - timedelta(milliseconds=took)
        return began.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return at


def _when(at: str) -> float:
    try:
        return datetime.fromisoformat(at).timestamp()
    except ValueError:
        return 0.0


def render(story: Story) -> str:
    """The story for a person: a summary, then one line per step with its offset."""
    lines = [
        f"correlation id {story.correlation_id}: {len(story.steps)} steps over"
        f" {story.duration_ms:.1f} ms",
        f"  services: {', '.join(story.services)}",
        f"  messages: {', '.join(story.messages) or '(none)'}",
    ]
    if story.trace_ids:
        lines.append(f"  trace:    {', '.join(story.trace_ids)}")
    lines.append("")
    start = _when(story.steps[0].at)
    width = max(len(step.service) for step in story.steps)
    for step in story.steps:
        offset = (_when(step.at) - start) * 1000
        if step.kind == "message":
            d = step.detail
            text = f"=> {step.what} on {d['topic']} (subject {d['subject']})"
        else:
            d = step.detail
            request = " ".join(str(d[k]) for k in ("method", "path", "status") if k in d)
            took = f", took {d['duration_ms']} ms" if "duration_ms" in d else ""
            if "subscription" in d:
                request = f"{d['subscription']}: {', '.join(d.get('types', []))}"
            extra = (
                f" ({d.get('error') or d.get('reason')})" if d.keys() & {"error", "reason"} else ""
            )
            text = f"{step.what}{' ' + request if request else ''}{took}{extra}"
        lines.append(f"  +{offset:9.1f} ms  {step.service:<{width}}  {text}")
    return "\n".join(lines)
