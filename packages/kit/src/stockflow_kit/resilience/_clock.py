"""The clock type shared by deadlines, breakers and budgets."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

Clock: TypeAlias = Callable[[], float]
"""A callable returning monotonic seconds, like :func:`time.monotonic` (the default everywhere).

:class:`stockflow_kit.resilience.testing.ManualClock` is one that tests move by hand.
"""
