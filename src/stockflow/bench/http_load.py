"""Closed-loop HTTP load for ``stockflow bench http``: wrk when installed, else a built-in client.

Both keep *connections* HTTP/1.1 keep-alive connections busy for *duration* seconds, each
sending its next request as soon as the previous response is in (a closed loop: the offered
load is whatever the server sustains), and report requests/s and latency percentiles.

* :func:`run_wrk` runs ``wrk -t1 -c<connections> -d<duration>s --latency`` (one client
  thread, as in the issue's table), with a Lua script for a body;
A :data:`FRESH` in a target's path, header values or body is replaced, on every request, by a
value no other request of the run had (an ``Idempotency-Key`` for a write that must be new,
a changed field for a write that must change something).

* :func:`run_builtin` is an asyncio client on raw sockets, in this process. It costs more CPU
  per request than wrk, so its figures are lower; ratios taken inside one run remain
  comparable.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import msgspec

__all__ = ["FRESH", "LoadResult", "Target", "run_builtin", "run_load", "run_wrk", "wrk_path"]


FRESH: Final = "@fresh@"
"""Replaced on each request by a new value of :data:`FRESH_WIDTH` characters."""
FRESH_WIDTH: Final = 18
"""8 random hex digits for the run, then the request's number in 10 digits."""


def fresh_values() -> Iterator[str]:
    """The values of :data:`FRESH` for one run: ``<8 hex digits><10-digit request number>``."""
    prefix = secrets.token_hex(4)
    return (f"{prefix}{n:010d}" for n in itertools.count(1))


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """One request, repeated: *method* on ``http://127.0.0.1:<port><path>`` with *body*."""

    port: int
    method: str = "GET"
    path: str = "/"
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """Sent with every request (a service credential, say)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def fresh(self) -> bool:
        """Whether a :data:`FRESH` is in its path, header values or body."""
        texts = [self.path, *(value for _, value in self.headers)]
        return any(FRESH in text for text in texts) or FRESH.encode() in (self.body or b"")

    def with_fresh(self, value: str) -> Target:
        """This request with *value* in place of each :data:`FRESH`."""
        return Target(
            port=self.port,
            method=self.method,
            path=self.path.replace(FRESH, value),
            body=None if self.body is None else self.body.replace(FRESH.encode(), value.encode()),
            headers=tuple((k, v.replace(FRESH, value)) for k, v in self.headers),
        )


class LoadResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one load run measured.

    Args:
        tool: ``"wrk"`` or ``"builtin"``.
        requests: Responses received.
        seconds: How long the run lasted.
        requests_per_s: ``requests / seconds``.
        p50_ms: Median latency, in milliseconds.
        p99_ms: 99th percentile latency, in milliseconds.
        non_2xx: Responses with a status outside 200-399.
        errors: Connect, read, write and timeout errors.
        ok_p99_ms: 99th percentile latency of the 2xx/3xx responses alone (the built-in
            client only; ``None`` from wrk, which does not split latency by status).
    """

    tool: str
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    ok_p99_ms: float | None = None


def wrk_path() -> str | None:
    """The ``wrk`` executable on ``PATH``, or ``None``."""
    return shutil.which("wrk")


def run_load(
    target: Target,
    *,
    connections: int,
    duration: float,
    tool: str,
    honour_retry_after: bool = False,
) -> LoadResult:
    """Run *tool* (``"wrk"`` or ``"builtin"``) against *target*.

    *honour_retry_after* is for the built-in client (wrk never waits).
    """
    if tool == "wrk":
        return run_wrk(target, connections=connections, duration=duration)
    return asyncio.run(
        run_builtin(
            target,
            connections=connections,
            duration=duration,
            honour_retry_after=honour_retry_after,
        )
    )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET_ERRORS = re.compile(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def _lua(target: Target) -> str:
    body = (target.body or b"").decode()
    script = (
        f"wrk.method = {_lua_string(target.method)}\n"
        f"wrk.body = {_lua_string(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    ) + "".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}\n" for k, v in target.headers)
    if target.fresh:  # one thread (-t1), so one counter numbers every request of the run
        prefix = secrets.token_hex(4)
        script += f"""
local n, marker, path = 0, {_lua_string(FRESH)}, {_lua_string(target.path)}
request = function()
  n = n + 1
  local value = {_lua_string(prefix)} .. string.format("%010d", n)
  local headers = {{}}
  for name, text in pairs(wrk.headers) do headers[name] = (tostring(text):gsub(marker, value)) end
  return wrk.format(nil, (path:gsub(marker, value)), headers, (wrk.body:gsub(marker, value)))
end
"""
    return script


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_wrk(target: Target, *, connections: int, duration: float) -> LoadResult:
    """Run wrk (one thread) against *target* and parse its report.

    Raises:
        RuntimeError: wrk is not installed, failed, or printed no latency distribution.
    """
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed (make bench installs it, or apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="stockflow-wrk-") as tmp:
        argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
        argv += ["--timeout", "10s"]
        if target.method != "GET" or target.body is not None or target.headers or target.fresh:
            script = Path(tmp) / "request.lua"
            script.write_text(_lua(target))
            argv += ["-s", str(script)]
        done = subprocess.run(
            [*argv, target.url], capture_output=True, text=True, check=False, timeout=duration + 60
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def parse_wrk(report: str) -> LoadResult:
    """Read requests/s, p50, p99, non-2xx and socket errors from a ``wrk --latency`` report.

    Raises:
        RuntimeError: The report has no request count or no latency distribution.
    """
    percentiles = {m[1]: float(m[2]) * _UNITS[m[3]] for m in _PERCENTILE.finditer(report)}
    requests = _REQUESTS.search(report)
    if requests is None or set(percentiles) != {"50", "99"}:
        raise RuntimeError(f"unexpected wrk report:\n{report}")
    seconds = float(requests[2]) * _UNITS[requests[3]] / 1000.0
    non_2xx = _NON_2XX.search(report)
    errors = _SOCKET_ERRORS.search(report)
    return LoadResult(
        tool="wrk",
        requests=int(requests[1]),
        seconds=seconds,
        requests_per_s=int(requests[1]) / seconds if seconds else 0.0,
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def _request_bytes(target: Target) -> bytes:
    """The request's bytes; its Content-Length counts each :data:`FRESH` as a value."""
    lines = [f"{target.method} {target.path} HTTP/1.1", f"Host: 127.0.0.1:{target.port}"]
    lines += [f"{name}: {value}" for name, value in target.headers]
    if target.body is not None:
        length = len(target.body) + target.body.count(FRESH.encode()) * (FRESH_WIDTH - len(FRESH))
        lines += ["Content-Type: application/json", f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (target.body or b"")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, float | None]:
    """Read one response; its status and its ``Retry-After`` in seconds, if any."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    retry_after: float | None = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"retry-after":
            retry_after = float(value)
    if length:
        await reader.readexactly(length)
    return status, retry_after


async def run_builtin(
    target: Target, *, connections: int, duration: float, honour_retry_after: bool = False
) -> LoadResult:
    """Drive *target* from *connections* asyncio connections for *duration* seconds.

    With *honour_retry_after*, a connection answered with a ``Retry-After`` waits that long
    (at most until the end of the run) before its next request, as a well-behaved client
    does after a 503; otherwise it asks again at once.
    """
    request = _request_bytes(target)
    # A fresh target's request is its parts joined by each request's own value.
    parts = request.split(FRESH.encode())
    values = fresh_values()
    latencies: list[float] = []
    ok_latencies: list[float] = []
    counts = {"non_2xx": 0, "errors": 0}
    deadline = time.perf_counter() + duration

    async def connection() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        except OSError:
            counts["errors"] += 1
            return
        try:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                if len(parts) == 1:
                    writer.write(request)
                else:
                    writer.write(next(values).encode().join(parts))
                status, retry_after = await _read_response(reader)
                latency = time.perf_counter() - sent
                latencies.append(latency)
                if 200 <= status < 400:
                    ok_latencies.append(latency)
                else:
                    counts["non_2xx"] += 1
                if honour_retry_after and retry_after:
                    await asyncio.sleep(min(retry_after, max(0.0, deadline - time.perf_counter())))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["errors"] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    seconds = time.perf_counter() - started
    latencies.sort()
    ok_latencies.sort()
    return LoadResult(
        tool="builtin",
        requests=len(latencies),
        seconds=seconds,
        requests_per_s=len(latencies) / seconds if seconds else 0.0,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        non_2xx=counts["non_2xx"],
        errors=counts["errors"],
        ok_p99_ms=_percentile(ok_latencies, 0.99) * 1000,
    )


def _percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]
