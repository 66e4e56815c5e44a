"""The last-known-profile cache: bounded (LRU) and aging (TTL)."""

from __future__ import annotations

import pytest

from stockflow.edge.domain.profile_cache import ProfileCache


def test_the_least_recently_used_profile_goes_first() -> None:
    cache = ProfileCache(size=2, ttl=60, clock=lambda: 0.0)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", b"3")
    assert cache.get("b") is None
    assert [cache.get(u) is not None for u in ("a", "c")] == [True, True]
    assert len(cache) == 2


def test_a_profile_older_than_the_ttl_is_gone() -> None:
    now = [0.0]
    cache = ProfileCache(size=10, ttl=30, clock=lambda: now[0])
    cache.put("a", b"1")
    now[0] = 29.0
    entry = cache.get("a")
    assert entry is not None
    assert cache.age(entry) == 29.0
    now[0] = 30.0
    assert cache.get("a") is None
    assert len(cache) == 0


def test_a_new_copy_replaces_the_old_and_restarts_its_clock() -> None:
    now = [0.0]
    cache = ProfileCache(size=10, ttl=30, clock=lambda: now[0])
    cache.put("a", b"old")
    now[0] = 20.0
    cache.put("a", b"new")
    now[0] = 45.0
    entry = cache.get("a")
    assert entry is not None
    assert entry.body == b"new"
    cache.forget("a")
    assert cache.get("a") is None


def test_nonsense_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        ProfileCache(size=0, ttl=1, clock=lambda: 0.0)
