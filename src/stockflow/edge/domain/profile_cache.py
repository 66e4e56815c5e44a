"""The last good profile per user, for ``GET /me`` when profiles cannot answer.

Bounded (least recently used out first) and aging (an entry older than *ttl* seconds is
gone): a copy is served only while it is recent enough to be worth more than a 503.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CachedProfile", "ProfileCache"]


@dataclass(frozen=True)
class CachedProfile:
    body: bytes
    """The profile as profiles answered it (JSON)."""
    stored_at: float


class ProfileCache:
    """At most *size* profiles, each kept *ttl* seconds after it was last stored."""

    def __init__(self, *, size: int, ttl: float, clock: Callable[[], float]) -> None:
        if size < 1 or ttl <= 0:
            raise ValueError("size must be at least 1 and ttl positive")
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, CachedProfile] = OrderedDict()

    def put(self, user_id: str, body: bytes) -> None:
        self._entries[user_id] = CachedProfile(body, self._clock())
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def get(self, user_id: str) -> CachedProfile | None:
        """The user's profile if one was stored less than *ttl* seconds ago."""
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        if self._clock() - entry.stored_at >= self._ttl:
            del self._entries[user_id]
            return None
        self._entries.move_to_end(user_id)
        return entry

    def age(self, entry: CachedProfile) -> float:
        """Seconds since *entry* was stored."""
        return self._clock() - entry.stored_at

    def forget(self, user_id: str) -> None:
        self._entries.pop(user_id, None)

    def __len__(self) -> int:
        return len(self._entries)
