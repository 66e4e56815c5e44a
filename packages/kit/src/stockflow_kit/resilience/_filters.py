"""``on=`` filters: which exceptions a breaker counts (and, for retries, which it retries)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

ErrorFilter: TypeAlias = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]
"""Which exceptions count: an exception type, a tuple of them, or a predicate."""


def is_exception_type(obj: object) -> bool:
    """Return whether *obj* is a subclass of :class:`Exception` (checked at run time)."""
    return isinstance(obj, type) and issubclass(obj, Exception)


def error_matcher(on: ErrorFilter) -> Callable[[Exception], bool]:
    """Return a predicate for *on*.

    Raises:
        TypeError: If *on* is neither :class:`Exception` types nor a callable.
    """
    if isinstance(on, tuple | type):
        types = on if isinstance(on, tuple) else (on,)
        if all(is_exception_type(t) for t in types):
            return lambda exc: isinstance(exc, types)
    elif callable(on):
        return on
    msg = f"on= must be Exception types or a predicate, got {on!r}"
    raise TypeError(msg)
