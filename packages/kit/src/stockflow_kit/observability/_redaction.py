"""Redaction of secrets in log lines: which keys are sensitive, and the processor."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final

from structlog.typing import EventDict, WrappedLogger

__all__ = ["REDACTED", "SENSITIVE_KEYS", "is_sensitive_key", "redact_secrets"]

REDACTED: Final = "[REDACTED]"
"""What a secret value is replaced with."""

SENSITIVE_KEYS: Final = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "passwd",
        "password",
        "refresh_token",
        "secret",
        "set_cookie",
        "token",
    }
)
"""Normalised key names whose values are never logged; see :func:`is_sensitive_key`."""

_MAX_DEPTH: Final = 8
_SUFFIXES: Final = tuple("_" + s for s in SENSITIVE_KEYS)
# Values that cannot hold a secret under a nested key: returned as they are, no type test.
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def is_sensitive_key(key: object) -> bool:
    """Tell whether values under *key* must be redacted.

    The key is lowercased and ``-`` becomes ``_``; it is sensitive when it equals one of
    :data:`SENSITIVE_KEYS` or ends with ``_`` plus one of them. So ``Authorization``,
    ``Set-Cookie``, ``X-Api-Key`` and ``client_secret`` are sensitive; ``sku`` and
    ``token_count`` are not. ``bytes`` keys (raw ASGI headers) are decoded as Latin-1.
    """
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    if not isinstance(key, str):
        return False
    return _is_sensitive_name(key)


@functools.lru_cache(maxsize=4096)
def _is_sensitive_name(key: str) -> bool:
    # Cached: a service logs the same few dozen keys on every line. The cache is bounded, so
    # keys made of data (a dict keyed by SKU) cost a miss, never unbounded memory.
    name = key.lower().replace("-", "_")
    return name in SENSITIVE_KEYS or name.endswith(_SUFFIXES)


def _redact(value: object, depth: int) -> object:
    if type(value) in _SCALARS or depth > _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_sensitive_key(k) else _redact(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        items = [_redact_item(item, depth + 1) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def _redact_item(item: object, depth: int) -> object:
    # A (name, value) pair, as in ASGI's raw header list or httpx's multi_items().
    if isinstance(item, tuple) and len(item) == 2 and is_sensitive_key(item[0]):
        return (item[0], REDACTED)
    return _redact(item, depth)


def redact_secrets(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
    """A structlog processor that replaces secret values with :data:`REDACTED`.

    Top-level keys, keys of nested mappings (including header objects such as
    :class:`starlette.datastructures.Headers` or :class:`httpx.Headers`, which come out as
    plain dicts) and ``(name, value)`` pairs inside lists and tuples are checked with
    :func:`is_sensitive_key`. Containers are copied, never modified in place; nesting deeper
    than eight levels is left as is.
    """
    known = _KNOWN_KEYS
    for key, value in event_dict.items():
        if known.get(key) is not False or type(value) not in _SCALARS:
            break
    else:
        return event_dict  # scalars under keys known not to be secrets: nothing to replace
    redacted: EventDict = {}
    for key, value in event_dict.items():
        if _is_sensitive_cached(key):
            redacted[key] = REDACTED
        else:
            redacted[key] = value if type(value) in _SCALARS else _redact(value, 0)
    return redacted


_KNOWN_KEYS: dict[object, bool] = {}


def _is_sensitive_cached(key: object) -> bool:
    # The top-level keys of log lines repeat on every line: a dict lookup instead of a call.
    known = _KNOWN_KEYS.get(key)
    if known is None:
        known = is_sensitive_key(key)
        if type(key) is str and len(_KNOWN_KEYS) < 4096:
            _KNOWN_KEYS[key] = known
    return known
