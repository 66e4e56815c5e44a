"""What the activities of one ``chaos run`` share: running loads, marks in time, figures."""

from __future__ import annotations

from typing import Any

from stockflow_chaos.load import Load

loads: dict[str, Load] = {}
"""Running (or stopped) load generators by name."""

marks: dict[str, float] = {}
"""Monotonic times of events (``SIGKILL:inventory``, ``nats_started``) and the pids signalled
(``pid:inventory``)."""

figures: dict[str, Any] = {}
"""The measured figures of the run; ``probes.figures`` (the experiments' last rollback) returns
them for the journal. Keys starting with ``_`` are working data, left out."""

proxy: Any = None
"""The fault proxy of the run, when its control started one (a ``ProxyThread``)."""

baseline: dict[str, tuple[float, float]] = {}
"""Each service's (5xx, 503) answers before the experiment began (the control takes them)."""
