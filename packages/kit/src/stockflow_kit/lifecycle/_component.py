"""The ``Component`` protocol, and an adapter that makes one out of plain functions."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias, runtime_checkable

__all__ = ["Callbacks", "Component", "Hook", "ReadinessProbe", "component"]

Hook: TypeAlias = Callable[[], Awaitable[None] | None]
"""A start or stop function: ``async def`` or plain."""
ReadinessProbe: TypeAlias = Callable[[], Awaitable[str | None] | str | None]
"""A readiness function: returns ``None`` when ready, else a one-line reason."""


@runtime_checkable
class Component(Protocol):
    """Something with a lifetime: started once, probed for readiness, stopped once.

    A :class:`~stockflow_kit.lifecycle.Lifecycle` starts its components in order and stops
    them in reverse; a component needs no base class, only these four members.
    """

    @property
    def name(self) -> str:
        """A short name for logs and readiness reasons (``"relay"``, ``"pruner"``)."""
        ...

    async def start(self) -> None:
        """Acquire resources and start background work; return once started.

        If it raises, it must leave nothing running: the lifecycle stops only the components
        whose ``start`` returned.
        """
        ...

    async def stop(self) -> None:
        """Stop background work and release resources; return once stopped."""
        ...

    async def readiness(self) -> str | None:
        """``None`` when ready to serve, else a one-line reason why not."""
        ...


async def _call(hook: Hook | ReadinessProbe) -> object:
    result = hook()
    if inspect.isawaitable(result):
        return await result
    return result


class Callbacks:
    """A :class:`Component` made of plain functions; create it with :func:`component`."""

    __slots__ = ("_name", "_readiness", "_start", "_stop")

    def __init__(
        self,
        name: str,
        *,
        start: Hook | None = None,
        stop: Hook | None = None,
        readiness: ReadinessProbe | None = None,
    ) -> None:
        self._name = name
        self._start, self._stop, self._readiness = start, stop, readiness

    @property
    def name(self) -> str:
        """The name given."""
        return self._name

    async def start(self) -> None:
        """Call *start*, if given (awaiting it if it is a coroutine function)."""
        if self._start is not None:
            await _call(self._start)

    async def stop(self) -> None:
        """Call *stop*, if given (awaiting it if it is a coroutine function)."""
        if self._stop is not None:
            await _call(self._stop)

    async def readiness(self) -> str | None:
        """The answer of *readiness*; ``None`` (ready) when none was given.

        Raises:
            TypeError: If *readiness* returned neither ``None`` nor a string.
        """
        if self._readiness is None:
            return None
        reason = await _call(self._readiness)
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"readiness of {self._name!r} returned {reason!r}, not str | None")
        return reason

    def __repr__(self) -> str:
        return f"<Callbacks {self._name!r}>"


def component(
    name: str,
    *,
    start: Hook | None = None,
    stop: Hook | None = None,
    readiness: ReadinessProbe | None = None,
) -> Callbacks:
    """Make a :class:`Component` of plain functions, for objects that have no class of ours::

        engine = component("database", start=pool.open, stop=pool.close, readiness=pool.check)

    Each function may be ``async def`` or plain; each is optional (a missing *start* or
    *stop* does nothing, a missing *readiness* means always ready).

    Args:
        name: The component's name in logs and readiness reasons.
        start: Called by :meth:`Callbacks.start`.
        stop: Called by :meth:`Callbacks.stop`.
        readiness: Called by :meth:`Callbacks.readiness`; returns ``None`` or a reason.
    """
    return Callbacks(name, start=start, stop=stop, readiness=readiness)
