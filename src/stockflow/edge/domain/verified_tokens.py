"""Bearer tokens already verified, so that a client's next request skips the signature check.

Every public request carries its JWT; checking it (PyJWT: base64, JSON, the HMAC or RSA
signature, the claims) cost ~50 us per request, each time for the same few tokens. An
entry is kept only while the token itself is still acceptable: until its ``exp`` plus the
verifier's leeway (what PyJWT would accept), and never longer than *max_age* seconds after
it was verified, so a key removed from a JWKS stops being honoured within *max_age*.
Only successes are kept: a refused token is checked again every time (and rate limited by
address, :class:`~stockflow.edge.service_layer.gate.Gate`).
"""

from __future__ import annotations

from collections.abc import Callable

from stockflow.edge.domain.identity import Principal

__all__ = ["VerifiedTokens"]


class VerifiedTokens:
    """At most *size* verified tokens (the oldest out first), each until it expires."""

    def __init__(self, *, size: int, max_age: float, clock: Callable[[], float]) -> None:
        if size < 1 or max_age <= 0:
            raise ValueError("size must be at least 1 and max_age positive")
        self._size = size
        self._max_age = max_age
        self._clock = clock
        self._entries: dict[str, tuple[Principal, float]] = {}
        self.hits = 0
        """Lookups answered from the cache (tests, and a figure to read in a debugger)."""

    def get(self, token: str) -> Principal | None:
        """The principal of *token* if it was verified and its entry has not expired."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, until = entry
        if self._clock() >= until:
            del self._entries[token]
            return None
        self.hits += 1
        return principal

    def put(self, token: str, principal: Principal, *, accepted_until: float) -> None:
        """Keep *token*, verified now, until *accepted_until* (clock seconds) at the latest."""
        until = min(accepted_until, self._clock() + self._max_age)
        self._entries.pop(token, None)
        self._entries[token] = (principal, until)
        while len(self._entries) > self._size:  # dicts keep insertion order: oldest first
            del self._entries[next(iter(self._entries))]

    def expires_at(self, token: str) -> float | None:
        """When *token*'s entry expires (clock seconds), ``None`` when it is not kept."""
        entry = self._entries.get(token)
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        return len(self._entries)
