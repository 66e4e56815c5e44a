"""Retries with full jitter, a retry budget and a deadline, on stamina's switches and hooks.

stamina's jitter is *additive*: its backoff is ``min(wait_max, wait_initial *
wait_exp_base**(n-1) + uniform(0, wait_jitter))``, so synchronised callers stay synchronised
to within ``wait_jitter``. We want *full jitter* (AWS Architecture Blog, "Exponential Backoff
and Jitter"), which spreads them over the whole interval::

    delay(n) = uniform(0, min(wait_max, wait_initial * wait_exp_base ** (n - 1)))

We also need two decisions stamina cannot make for us: spend a :class:`RetryBudget` token
only when a retry will really happen, and never sleep past a :class:`Deadline`. Driving
``stamina.retry_context`` with a backoff hook would not do: tenacity (under stamina) asks the
hook *before* its stop condition, so the final attempt would spend a budget token for a retry
that never comes, and the sleep could not be injected for tests. So the loop (about sixty
lines) is ours, and everything observable stays stamina's:

- the same ``on=`` contract, required, including backoff hooks that return a ``float`` or
  :class:`datetime.timedelta` (e.g. from ``Retry-After``) to override the delay;
- the same instrumentation: every scheduled retry calls stamina's hooks
  (:func:`stamina.instrumentation.get_on_retry_hooks`) with a
  :class:`~stamina.instrumentation.RetryDetails`, so ``stamina_retries_total`` and the
  ``stamina.retry_scheduled`` log event cover our retries too, with the real ``wait_for``;
- the same switches: :func:`stamina.set_active` (``False``: one attempt, no retries) and
  test mode (:func:`stamina.is_testing`: every delay is zero). In test mode stockflow retries
  keep their configured *attempts*, because attempts, budget and deadline are what tests check.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import stamina
import structlog
from stamina.instrumentation import RetryDetails, get_on_retry_hooks

from ._budget import RetryBudget
from ._clock import Clock
from ._deadline import Deadline, current_deadline
from ._errors import DeadlineExceededError
from ._retry_policy import Policy, RandomSource, RetryOn, Sleep

__all__ = ["Attempt", "Retrying", "retry", "retrying"]

P = ParamSpec("P")
T = TypeVar("T")


class Attempt:
    """One attempt of a :class:`Retrying` loop; use it as ``with attempt:``.

    Leaving the block with a retryable exception suppresses it and schedules the next
    attempt; any other exception (or the last one) propagates out of the loop.
    """

    __slots__ = ("_deadline", "_num", "_retrying", "_scheduled")

    def __init__(self, retrying: Retrying, num: int, deadline: Deadline | None) -> None:
        self._retrying = retrying
        self._num = num
        self._deadline = deadline
        self._scheduled = False

    @property
    def num(self) -> int:
        """The attempt's number, starting at 1."""
        return self._num

    @property
    def deadline(self) -> Deadline | None:
        """The overall deadline (the tighter of *timeout* and *deadline*), if any.

        Use ``attempt.deadline.timeout(per_attempt)`` for the attempt's own timeout.
        """
        return self._deadline

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if exc is None:
            return False
        self._scheduled = self._retrying._schedule(self, exc)
        return self._scheduled

    def __repr__(self) -> str:
        return f"<Attempt num={self._num}>"


class Retrying:
    """An async iterator of :class:`Attempt` s; create it with :func:`retrying`."""

    def __init__(
        self,
        policy: Policy,
        *,
        name: str,
        args: tuple[object, ...] = (),
        kwargs: dict[str, object] | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        self._policy = policy
        self._name = name
        self._args = args
        self._kwargs = kwargs or {}
        self._given = deadline
        self._deadline: Deadline | None = None
        self._attempt: Attempt | None = None
        self._delay = 0.0
        self._waited = 0.0
        self._cms: list[AbstractContextManager[None]] = []

    def __aiter__(self) -> Retrying:
        return self

    async def __anext__(self) -> Attempt:
        previous = self._attempt
        if previous is None:
            self._start()
        elif not previous._scheduled:
            raise StopAsyncIteration
        else:
            try:
                if self._delay > 0:
                    await self._policy.sleep(self._delay)
            finally:
                for cm in reversed(self._cms):  # stamina's hook contract: exit before retrying
                    cm.__exit__(None, None, None)
                self._cms.clear()
        self._attempt = Attempt(self, 1 if previous is None else previous.num + 1, self._deadline)
        return self._attempt

    def _start(self) -> None:
        given = self._given if self._given is not None else current_deadline()
        if given is not None:
            given.check()
        policy = self._policy
        own = None if policy.timeout is None else Deadline(policy.timeout, clock=policy.clock)
        candidates = [d for d in (given, own) if d is not None]
        self._deadline = min(candidates, key=Deadline.remaining, default=None)
        if policy.budget is not None:
            policy.budget.record_request()

    def _schedule(self, attempt: Attempt, exc: BaseException) -> bool:
        """Decide whether to retry after *exc*; if so, set the delay and run stamina's hooks."""
        policy = self._policy
        if not isinstance(exc, Exception) or isinstance(exc, DeadlineExceededError):
            return False
        verdict = policy.judge(exc)
        if verdict is False or not stamina.is_active():
            return False
        if policy.attempts is not None and attempt.num >= policy.attempts:
            return False
        delay = policy.delay(attempt.num, verdict)
        if self._deadline is not None and delay >= self._deadline.remaining():
            return self._abandon("deadline", attempt, exc)
        if policy.budget is not None and not policy.budget.try_acquire_retry():
            return self._abandon("budget", attempt, exc)
        self._delay = delay
        details = RetryDetails(
            name=self._name,
            args=self._args,
            kwargs=self._kwargs,
            retry_num=attempt.num,
            wait_for=delay,
            waited_so_far=self._waited,
            caused_by=exc,
        )
        for hook in get_on_retry_hooks():
            maybe_cm = hook(details)
            if isinstance(maybe_cm, AbstractContextManager):
                maybe_cm.__enter__()
                self._cms.append(maybe_cm)
        self._waited += delay
        return True

    def _abandon(self, reason: str, attempt: Attempt, exc: Exception) -> bool:
        structlog.get_logger("stockflow_kit.resilience").info(
            "retry.abandoned",
            callable=self._name,
            reason=reason,
            attempt=attempt.num,
            caused_by=repr(exc),
        )
        return False


def retrying(
    *,
    on: RetryOn,
    attempts: int | None = 10,
    timeout: float | None = 45.0,
    wait_initial: float = 0.1,
    wait_max: float = 5.0,
    wait_exp_base: float = 2.0,
    budget: RetryBudget | None = None,
    deadline: Deadline | None = None,
    name: str = "<context block>",
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    rng: RandomSource | None = None,
) -> Retrying:
    """Return an async iterator of attempts for retrying a block of code::

        async for attempt in retrying(on=httpx.ConnectError, attempts=3):
            with attempt:
                response = await client.get(url)

    Arguments are those of :func:`retry`, plus *deadline* (a :class:`Deadline`; by default
    :func:`current_deadline`) and *name* (the ``callable`` in stamina's metrics and logs).

    Raises:
        DeadlineExceededError: At the first iteration, if *deadline* has already passed.
    """
    policy = Policy(
        on, attempts, timeout, wait_initial, wait_max, wait_exp_base, budget, clock, sleep, rng
    )
    return Retrying(policy, name=name, deadline=deadline)


def retry(
    *,
    on: RetryOn,
    attempts: int | None = 10,
    timeout: float | None = 45.0,
    wait_initial: float = 0.1,
    wait_max: float = 5.0,
    wait_exp_base: float = 2.0,
    budget: RetryBudget | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    rng: RandomSource | None = None,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Retry the decorated ``async def`` when it raises what *on* names.

    The delay after failed attempt *n* is full jitter::

        uniform(0, min(wait_max, wait_initial * wait_exp_base ** (n - 1)))

    so with the defaults the first retry waits up to 0.1 s, the fifth up to 1.6 s, and none
    more than 5 s. If no retry is made, the *last* exception propagates unchanged. A retry is
    not made when the attempts are used up, when its delay would reach the overall deadline
    (the tighter of *timeout* and :func:`current_deadline`), or when *budget* refuses it.

    Args:
        on: The exception type(s) to retry on, or a backoff hook (as in stamina) that returns
            ``True``/``False`` or a delay in seconds (``float`` or ``timedelta``) to use
            instead of the backoff. Required: there is no default.
        attempts: Total attempts including the first; ``10`` by default, ``None`` for no
            limit.
        timeout: Seconds from the first attempt after which no retry starts; ``45.0`` by
            default, ``None`` for no limit. A running attempt is not interrupted: use
            ``attempt.deadline.timeout(...)`` for that.
        wait_initial: Cap of the first delay in seconds; ``0.1`` by default.
        wait_max: Cap of every delay in seconds; ``5.0`` by default.
        wait_exp_base: Growth of the cap per attempt; ``2.0`` by default.
        budget: A :class:`RetryBudget` shared by all calls to the same dependency; each call
            records a request, and each retry must be granted by it. ``None``: no budget.
        clock: Monotonic seconds for *timeout*; :func:`time.monotonic` by default.
        sleep: The async sleep between attempts; :func:`asyncio.sleep` by default.
        rng: The source of jitter; a shared :class:`random.Random` by default.

    Raises:
        TypeError: If *on* is neither exception types nor a callable, or if the decorated
            function is not a coroutine function.
        ValueError: If a number is out of range.
    """
    policy = Policy(
        on, attempts, timeout, wait_initial, wait_max, wait_exp_base, budget, clock, sleep, rng
    )

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"retry() decorates async functions; use stamina.retry for {fn!r}")
        name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"

        @functools.wraps(fn)
        async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            async for attempt in Retrying(policy, name=name, args=args, kwargs=dict(kwargs)):
                with attempt:
                    return await fn(*args, **kwargs)
            raise AssertionError("unreachable: the last attempt returns or raises")

        return retried

    return decorate
