"""Where webhooks may point: the SSRF rules, checked at subscription and again at delivery.

A webhook URL must be ``http`` or ``https``, name a host, and carry no user info. Then:

- a host on the **allowlist** is accepted whatever it resolves to. Patterns are ``host``,
  ``host:port``, ``*.domain`` (any subdomain, not the domain itself), ``*.domain:port``, an IP
  address (``127.0.0.1``, ``[::1]:8080``) or a network (``10.1.0.0/16``);
- any other host is accepted only when public traffic is allowed (``allow_public``, the
  default) and it is not private: an IP literal must be a global address, a name must not be
  ``localhost``, a single label (resolved through search domains) or under ``.localhost``,
  ``.local``, ``.internal``, ``.lan``, ``.home.arpa``; and at delivery every address the name
  resolves to must be global (:meth:`TargetPolicy.check_addresses`), so a public name that
  points at ``10.0.0.1`` or ``169.254.169.254`` is refused too.

Loopback, private, link-local (cloud metadata), shared, reserved, multicast and unspecified
addresses are all "not global"; IPv4-mapped IPv6 addresses are judged as the IPv4 inside.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

__all__ = ["Target", "TargetPolicy", "TargetRefusedError", "is_public_address"]

_LOCAL_SUFFIXES: Final = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
_SCHEMES: Final = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefusedError(Exception):
    """A webhook target that the SSRF rules refuse (the message says why)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL's scheme, host (lower case, IPv6 without brackets) and port."""

    scheme: str
    host: str
    port: int

    @property
    def address(self) -> IPAddress | None:
        """The host as an IP address, when it is one."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public_address(address: str | IPAddress) -> bool:
    """Whether *address* is a global unicast address (not loopback, private, link-local …)."""
    try:
        ip = _unmapped(ipaddress.ip_address(address) if isinstance(address, str) else address)
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True, slots=True)
class _Pattern:
    host: str
    port: int | None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None

    @classmethod
    def parse(cls, text: str) -> _Pattern:
        value = text.strip().lower()
        if not value:
            raise ValueError("an empty allowlist pattern")
        if "/" in value:
            return cls("", None, ipaddress.ip_network(value, strict=False))
        port: int | None = None
        if value.startswith("["):
            host, _, rest = value[1:].partition("]")
            if rest.startswith(":"):
                port = int(rest[1:])
        elif value.count(":") == 1:
            host, _, port_text = value.partition(":")
            port = int(port_text)
        else:
            host = value
        if port is not None and not 0 < port < 65_536:
            raise ValueError(f"a port out of range in {text!r}")
        return cls(host, port, None)

    def matches(self, target: Target) -> bool:
        if self.network is not None:
            address = target.address
            return address is not None and _unmapped(address) in self.network
        if self.port is not None and self.port != target.port:
            return False
        if self.host.startswith("*."):
            return target.host.endswith(self.host[1:])
        return self.host == target.host


class TargetPolicy:
    """The SSRF rules of one service (see the module docstring).

    Args:
        allowed: Allowlist patterns.
        allow_public: Accept hosts that are not on the list when they are public.

    Raises:
        ValueError: a pattern does not parse.
    """

    def __init__(self, allowed: Iterable[str] = (), *, allow_public: bool = True) -> None:
        self.patterns = tuple(_Pattern.parse(p) for p in allowed)
        self.allow_public = allow_public

    def parse(self, url: str) -> Target:
        """The target of *url*.

        Raises:
            TargetRefusedError: not an absolute http(s) URL with a host, or with user info.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise TargetRefusedError(f"not a valid URL: {error}") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise TargetRefusedError(f"only http and https URLs are allowed, not {scheme!r}")
        if not parts.hostname:
            raise TargetRefusedError("the URL names no host")
        if parts.username is not None or parts.password is not None:
            raise TargetRefusedError("the URL must not carry user info")
        return Target(scheme, parts.hostname.lower().rstrip("."), port or _SCHEMES[scheme])

    def allowlisted(self, target: Target) -> bool:
        return any(pattern.matches(target) for pattern in self.patterns)

    def check_url(self, url: str) -> Target:
        """The target of *url* if the rules accept it without resolving its name.

        Raises:
            TargetRefusedError: why not.
        """
        target = self.parse(url)
        if self.allowlisted(target):
            return target
        if not self.allow_public:
            raise TargetRefusedError(f"{target.host}:{target.port} is not on the allowlist")
        address = target.address
        if address is not None:
            if not is_public_address(address):
                raise TargetRefusedError(f"{target.host} is not a public address")
            return target
        host = target.host
        if host == "localhost" or "." not in host or host.endswith(_LOCAL_SUFFIXES):
            raise TargetRefusedError(f"{host!r} is a local name")
        return target

    def check_addresses(self, target: Target, addresses: Iterable[str]) -> None:
        """Refuse *target* when it is not allowlisted and any address it resolved to is not
        public (or it resolved to none).

        Raises:
            TargetRefusedError: why.
        """
        if self.allowlisted(target):
            return
        resolved = list(addresses)
        if not resolved:
            raise TargetRefusedError(f"{target.host!r} resolves to no address")
        private = [a for a in resolved if not is_public_address(a)]
        if private:
            raise TargetRefusedError(f"{target.host!r} resolves to a non-public address")
