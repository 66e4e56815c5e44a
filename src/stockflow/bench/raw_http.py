"""A small HTTP/1.1 keep-alive client on asyncio streams: what ``stockflow load`` sends with.

Why not httpx: a load generator must cost far less than what it loads. On this machine httpx
spends ~2-3 ms of CPU per request (its pool, h11, the header models), so at a few hundred
requests/s the generator, sharing two cores with the system, was the bottleneck: ``stockflow
load --compare-bare`` measured a trivial FastAPI endpoint at 346 req/s through httpx, where
wrk gets ~3,300. This client writes the request bytes itself and reads ``Content-Length`` or
chunked bodies; the same comparison in one run gives both figures (``bench.load_bare``).

It speaks to one ``host:port``, keeps idle connections for reuse (at most ``max_connections``
open), and bounds every request by ``timeout``. Errors are the standard ones: ``OSError``
(refused, reset), ``asyncio.IncompleteReadError`` (closed mid-answer), ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = ["RawHttp", "RawResponse"]


@dataclass(frozen=True, slots=True)
class RawResponse:
    status_code: int
    headers: dict[str, str]
    """Lower-case names."""
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class RawHttp:
    """Requests to the server at *base_url* (``http://host:port``)."""

    def __init__(self, base_url: str, *, max_connections: int = 256, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"need an http://host:port URL, not {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self._host_header = f"Host: {self.host}:{self.port}\r\n".encode()
        self.timeout = timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _reader, writer in idle:
            writer.close()

    async def __aenter__(self) -> RawHttp:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def get(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> RawResponse:
        if params:
            path = f"{path}?{urlencode(params)}"
        return await self.request("GET", path, headers=headers)

    async def post(
        self, path: str, *, json_body: Any = None, headers: Mapping[str, str] | None = None
    ) -> RawResponse:
        return await self.request("POST", path, json_body=json_body, headers=headers)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> RawResponse:
        head = bytearray(f"{method} {path} HTTP/1.1\r\n".encode())
        head += self._host_header
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n".encode()
        body = b""
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            head += b"Content-Type: application/json\r\n"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Length: {len(body)}\r\n".encode()
        head += b"\r\n"
        async with self._slots, asyncio.timeout(self.timeout):
            reader, writer = self._idle.pop() if self._idle else await self._connect()
            try:
                writer.write(bytes(head) + body)
                response, keep = await _read(reader)
            except BaseException:
                writer.close()
                raise
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return response

    async def _connect(self) -> _Connection:
        return await asyncio.open_connection(self.host, self.port)


async def _read(reader: asyncio.StreamReader) -> tuple[RawResponse, bool]:
    """One response, and whether the connection may be used again."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].decode("latin-1").split("\r\n")
    status = int(lines[0][9:12])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        content = bytearray()
        while size := int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16):
            content += await reader.readexactly(size + 2)
            del content[-2:]
        await reader.readuntil(b"\r\n")  # the end of the (empty) trailer
        body = bytes(content)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    keep = headers.get("connection", "").lower() != "close"
    return RawResponse(status, headers, body), keep
