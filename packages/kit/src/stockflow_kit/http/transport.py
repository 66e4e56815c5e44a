"""``PooledTransport``: httpx's API over aiohttp's connection pool, for service-to-service calls.

httpx's own pool (httpcore) costs about 2.5 ms of CPU per request at 32 calls in flight on
the machines this project runs on, and the cost grows with concurrency; aiohttp's pool costs
about 0.4 ms for the same exchange (``stockflow bench http --clients``, measured in one run
against the same server; docs/benchmarks.md). Every hop of an order pays it, so
:class:`~stockflow_kit.http.ResilientClient` uses this transport by default. It is
modelled on `httpx-aiohttp <https://pypi.org/project/httpx-aiohttp/>`_'s transport, with two
differences:

- aiohttp's exceptions are mapped to the httpx exception that says what happened (the
  library maps a dropped keep-alive connection to ``ConnectTimeout``, which would log a
  broken exchange as a timeout): refused or unresolvable connections are
  :class:`httpx.ConnectError`, timeouts :class:`httpx.ReadTimeout` /
  :class:`httpx.ConnectTimeout`, a connection lost mid-exchange
  :class:`httpx.RemoteProtocolError`, a broken body :class:`httpx.ReadError`.
- Idle connections are closed after ``keepalive_expiry`` (4 s), before uvicorn's 5 s
  keep-alive timeout closes them from the other side, so a request is rarely written to a
  connection the server is closing.

Nothing outside the process is configured from the environment (``trust_env=False``: no
proxy variables are read for calls between services).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx

__all__ = ["DEFAULT_KEEPALIVE_EXPIRY", "PooledTransport"]

DEFAULT_KEEPALIVE_EXPIRY = 4.0  # below uvicorn's default timeout_keep_alive (5 s)
_CHUNK = 64 * 1024


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """Raise aiohttp's and asyncio's exceptions as the httpx exception that says what happened."""
    try:
        yield
    except httpx.HTTPError:
        raise
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
    except aiohttp.ClientConnectorError as exc:  # refused, unreachable, DNS
        raise httpx.ConnectError(str(exc)) from exc
    except aiohttp.ClientPayloadError as exc:
        raise httpx.ReadError(str(exc)) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.UnsupportedProtocol(str(exc)) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(str(exc) or type(exc).__name__) from exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class PooledTransport(httpx.AsyncBaseTransport):
    """An :class:`httpx.AsyncBaseTransport` over one :class:`aiohttp.ClientSession`.

    Args:
        max_connections: The most connections open at once (further requests wait for one).
        keepalive_expiry: Seconds an idle connection is kept for reuse.

    The session is made on the first request (it needs the running event loop) and closed by
    :meth:`aclose` (``httpx.AsyncClient.aclose`` calls it).
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=self._max_connections,
            keepalive_timeout=self._keepalive_expiry,
        )
        return aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        timeout = request.extensions.get("timeout", {})
        content: bytes | httpx.AsyncByteStream | None
        try:
            content = request.content or None
        except httpx.RequestNotRead:
            content = request.stream  # type: ignore[assignment]
            request.headers.pop("Transfer-Encoding", None)  # aiohttp frames the body
        with _mapped():
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=content,
                allow_redirects=False,
                compress=None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
