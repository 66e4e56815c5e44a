"""Name resolution for the SSRF check (the event loop's ``getaddrinfo``)."""

from __future__ import annotations

import asyncio
import socket

__all__ = ["SystemResolver"]


class SystemResolver:
    """Resolves with the system resolver; a name that does not resolve (within *timeout*
    seconds) gives no address."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    async def resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, TimeoutError):
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))
