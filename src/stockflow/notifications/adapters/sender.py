"""Webhook attempts over HTTP (httpx), connecting only to the address the SSRF rules checked.

The request goes to the checked IP address while the ``Host`` header (and, for https, the TLS
server name and certificate check) keep the URL's host, so a name that resolves to another
address between the check and the connection (DNS rebinding) cannot redirect it. Redirects
are never followed (a 3xx is a failed attempt). Proxies from the environment are ignored.

Exceptions: every httpx error is mapped here, once, to
:class:`~stockflow.notifications.service_layer.ports.SendFailedError` (timeouts, refused or
broken connections, TLS failures), with httpx's as ``__cause__``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import httpx

from stockflow.notifications.service_layer.ports import SendFailedError

__all__ = ["HttpxSender", "pinned_url"]


def pinned_url(url: str, address: str) -> tuple[str, str]:
    """*url* with its host replaced by *address*, and the ``Host`` header it needs."""
    parts = urlsplit(url)
    host = address if ipaddress.ip_address(address).version == 4 else f"[{address}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    original = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=netloc)), original


class HttpxSender:
    """One :class:`httpx.AsyncClient` for every endpoint (its pool keeps their connections),
    made at the first attempt and closed by :meth:`close`. *transport* replaces httpx's
    (``httpx.MockTransport`` in tests)."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client: httpx.AsyncClient | None = None
        self._transport = transport

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False, trust_env=False, transport=self._transport
            )
        return self._client

    async def send(
        self,
        url: str,
        *,
        address: str,
        headers: Mapping[str, str],
        body: bytes,
        time_limit: float,
    ) -> int:
        target, host = pinned_url(url, address)
        extensions: dict[str, object] = {}
        if urlsplit(url).scheme == "https":
            extensions["sni_hostname"] = urlsplit(url).hostname or ""
        try:
            response = await self.client.post(
                target,
                content=body,
                headers={**headers, "host": host},
                timeout=httpx.Timeout(time_limit),
                extensions=extensions,
            )
        except httpx.TimeoutException as error:
            raise SendFailedError(f"timed out ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise SendFailedError(f"{type(error).__name__}: {error}"[:500]) from error
        return response.status_code

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
