"""``Lifecycle``: start components in order, stop them in reverse, probe them together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

import structlog

from ._component import Component

__all__ = ["Lifecycle"]

_log = structlog.get_logger("stockflow_kit.lifecycle")


class Lifecycle:
    """Starts components in order, stops them in reverse order, and combines their readiness.

    ::

        lifecycle = Lifecycle([database, relay, pruner], name="inventory")
        app = FastAPI(lifespan=lifecycle.lifespan)

        @app.get("/readyz")
        async def readyz() -> Response:
            reason = await lifecycle.readiness()
            return Response(status_code=200 if reason is None else 503, content=reason or "ok")

    A lifecycle is itself a :class:`~stockflow_kit.lifecycle.Component`, so lifecycles nest.
    It logs ``lifecycle.started`` and ``lifecycle.stopped`` with its name and the component
    names, and ``lifecycle.stop_failed`` (with the stack) for each stop that raised.

    Args:
        components: Started in this order, stopped in the reverse order.
        name: The lifecycle's name in logs (and as a component).
        readiness_timeout: Seconds each component's readiness probe may take; ``2.0`` by
            default. A probe that takes longer is a reason (``"no answer within 2 s"``).

    Raises:
        ValueError: If two components have the same name.
    """

    def __init__(
        self, components: Iterable[Component], *, name: str, readiness_timeout: float = 2.0
    ) -> None:
        self._components = list(components)
        names = [c.name for c in self._components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be unique, got {names}")
        self._name = name
        self.readiness_timeout = readiness_timeout
        self._started: list[Component] = []
        self._running = False
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        """The name given."""
        return self._name

    @property
    def components(self) -> tuple[Component, ...]:
        """The components, in start order."""
        return tuple(self._components)

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has returned and :meth:`stop` has not been called since."""
        return self._running

    async def start(self) -> None:
        """Start every component in order.

        If one fails to start (or the start is cancelled), the components already started
        are stopped in reverse order and the exception is re-raised; the failing component
        must clean up after itself.

        Raises:
            RuntimeError: If the lifecycle is already started.
        """
        async with self._lock:
            if self._running:
                raise RuntimeError(f"the lifecycle {self._name!r} is already started")
            for each in self._components:
                try:
                    await each.start()
                except BaseException as error:
                    _log.error(
                        "lifecycle.start_failed",
                        lifecycle=self._name,
                        component=each.name,
                        error=repr(error),
                    )
                    await self._stop_started()
                    raise
                self._started.append(each)
            self._running = True
        _log.info(
            "lifecycle.started", lifecycle=self._name, components=[c.name for c in self._started]
        )

    async def stop(self) -> None:
        """Stop the started components in reverse order; idempotent.

        A stop that raises is logged (``lifecycle.stop_failed``) and the others are still
        stopped; :meth:`stop` itself does not raise for them. A concurrent call waits for the
        first one to finish.
        """
        async with self._lock:
            self._running = False
            if not self._started:
                return
            names = [c.name for c in reversed(self._started)]
            await self._stop_started()
        _log.info("lifecycle.stopped", lifecycle=self._name, components=names)

    async def _stop_started(self) -> None:
        while self._started:
            each = self._started.pop()
            try:
                await each.stop()
            except Exception:  # logged with its stack; the other components still stop
                _log.exception("lifecycle.stop_failed", lifecycle=self._name, component=each.name)

    async def readiness(self) -> str | None:
        """``None`` when every component is ready, else ``"name: reason; name: reason"``.

        The components are probed concurrently, each within ``readiness_timeout``; one that
        does not answer in time, or whose probe raises, is not ready. Before :meth:`start`
        (and after :meth:`stop`) every component is ``"not started"``.
        """
        if not self._running:
            return "; ".join(f"{c.name}: not started" for c in self._components) or "not started"
        reasons = await asyncio.gather(*(self._probe(c) for c in self._components))
        failing = [f"{c.name}: {r}" for c, r in zip(self._components, reasons, strict=True) if r]
        return "; ".join(failing) or None

    async def _probe(self, each: Component) -> str | None:
        try:
            async with asyncio.timeout(self.readiness_timeout):
                return await each.readiness()
        except TimeoutError:
            return f"no answer within {self.readiness_timeout:g} s"
        except Exception as error:  # a broken probe means "not ready", with the reason
            return f"readiness failed: {type(error).__name__}: {error}"

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """Start on entry and stop on exit: a Starlette/FastAPI ``lifespan``.

        Pass the bound method: ``FastAPI(lifespan=lifecycle.lifespan)``. *app* is not used.
        """
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self._components)
        return f"<Lifecycle {self._name!r} [{names}] started={self._running}>"
