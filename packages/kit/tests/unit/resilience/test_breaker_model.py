"""The breaker against a reference model, over random sequences of calls and clock moves."""

import asyncio
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from stockflow_kit.resilience import CircuitBreaker, CircuitOpenError
from stockflow_kit.resilience.testing import ManualClock


class Unavailable(Exception):
    pass


# One registry for every example: the breaker's metrics are not what this test checks.
_registry = CollectorRegistry()


@dataclass(frozen=True)
class Settings:
    failure_threshold: int | None
    failure_rate_threshold: float | None
    minimum_calls: int
    window_size: int
    reset_timeout: float
    success_threshold: int


@dataclass
class Model:
    """The breaker's specification, written as plainly as possible."""

    s: Settings
    state: str = "closed"
    consecutive: int = 0
    window: list[bool] = field(default_factory=list)
    opened_at: float = 0.0
    trial_successes: int = 0

    def move(self, to: str, now: float) -> None:
        self.state, self.consecutive, self.window, self.trial_successes = to, 0, [], 0
        if to == "open":
            self.opened_at = now

    def current(self, now: float) -> str:
        if self.state == "open" and now - self.opened_at >= self.s.reset_timeout:
            self.move("half_open", now)
        return self.state

    def call(self, outcome: str, now: float) -> str:
        if self.current(now) == "open":
            return "rejected"
        if outcome == "success" and self.state == "half_open":
            self.trial_successes += 1
            if self.trial_successes >= self.s.success_threshold:
                self.move("closed", now)
        elif outcome == "success":
            self.consecutive = 0
            self.window = [*self.window, False][-self.s.window_size :]
        elif outcome == "failure" and self.state == "half_open":
            self.move("open", now)
        elif outcome == "failure":
            self.consecutive += 1
            self.window = [*self.window, True][-self.s.window_size :]
            if self.tripped():
                self.move("open", now)
        return outcome

    def tripped(self) -> bool:
        s = self.s
        if s.failure_threshold is not None and self.consecutive >= s.failure_threshold:
            return True
        if s.failure_rate_threshold is None or len(self.window) < s.minimum_calls:
            return False
        return sum(self.window) / len(self.window) >= s.failure_rate_threshold


@st.composite
def breaker_settings(draw: st.DrawFn) -> Settings:
    window_size = draw(st.integers(1, 8))
    rate = draw(st.none() | st.sampled_from([0.25, 0.5, 1.0]))
    threshold = draw(st.integers(1, 5) if rate is None else st.none() | st.integers(1, 5))
    return Settings(
        failure_threshold=threshold,
        failure_rate_threshold=rate,
        minimum_calls=draw(st.integers(1, window_size)),
        window_size=window_size,
        reset_timeout=draw(st.sampled_from([0.0, 1.0, 5.0])),
        success_threshold=draw(st.integers(1, 3)),
    )


steps = st.lists(
    st.sampled_from(["success", "failure", "ignored"])
    | st.sampled_from([0.5, 1.0, 5.0]).map(lambda seconds: ("advance", seconds)),
    max_size=60,
)


async def _play(s: Settings, script: list[object]) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("model", on=Unavailable, clock=clock, registry=_registry, **vars(s))
    model = Model(s)
    errors = {"failure": Unavailable(), "ignored": LookupError()}

    async def outcome_of(kind: str) -> None:
        if kind in errors:
            raise errors[kind]

    for step in script:
        if isinstance(step, tuple):
            clock.advance(step[1])
            continue
        assert isinstance(step, str)
        try:
            await breaker.call(outcome_of, step)
            seen = "success"
        except CircuitOpenError:
            seen = "rejected"
        except Unavailable:
            seen = "failure"
        except LookupError:
            seen = "ignored"
        assert seen == model.call(step, clock())
        assert breaker.state.value == model.current(clock())


@settings(max_examples=300, deadline=None)
@given(breaker_settings(), steps)
def test_the_breaker_behaves_like_the_reference_model(s: Settings, script: list[object]) -> None:
    with capture_logs():
        asyncio.run(_play(s, script))
