"""Lifecycles: components started in order and stopped in reverse, background tasks, processes.

In a service, every piece with a lifetime (a pool, a relay, a consumer, a pruner) is a
:class:`Component` (``name``, ``start``, ``stop``, ``readiness``), and one :class:`Lifecycle`
per process starts and stops them and answers ``/readyz``::

    lifecycle = Lifecycle(
        [
            component("store", start=store.start, stop=store.close),
            BackgroundTask("relay", relay.run),
            Periodic("pruner", prune, interval=3600.0),
        ],
        name="inventory",
    )
    app = FastAPI(lifespan=lifecycle.lifespan)

:class:`GroupCommit` writes the items of concurrent callers in one transaction (one disk
flush for many requests). Out of process, :class:`ServiceProcess` runs one HTTP service as a subprocess (for tests,
benchmarks and ``stockflow up --distributed``) and :class:`Supervisor` keeps several alive.
Children die with their parent (:func:`die_with_parent`).

Log events: ``lifecycle.started``, ``lifecycle.stopped``, ``lifecycle.start_failed``,
``lifecycle.stop_failed``, ``lifecycle.task_failed``, ``lifecycle.task_finished``,
``lifecycle.job_failed``, ``lifecycle.process_started``, ``lifecycle.process_died``,
``lifecycle.process_restarted``, ``lifecycle.process_restart_failed``,
``lifecycle.process_killed``, ``lifecycle.process_stopped``. Metrics:
``lifecycle_task_restarts_total{task}``, ``lifecycle_periodic_runs_total{job, outcome}``,
``lifecycle_process_restarts_total{process}``.

Exceptions raised by the lifecycle toolkit itself (a component's own errors pass through)::

    LifecycleError
     ├── ProcessExitedError     the process exited before it was ready  (.name .returncode .log_tail)
     └── ProcessNotReadyError   not ready within the time given         (.name .within .log_tail)
"""

from stockflow_kit.net import free_port, free_port_block

from ._component import Callbacks, Component, Hook, ReadinessProbe, component
from ._errors import LifecycleError, ProcessExitedError, ProcessNotReadyError
from ._group_commit import GroupCommit, GroupCommitStoppedError
from ._lifecycle import Lifecycle
from ._parent import die_with_parent, parent_death_hook
from ._process import ServiceProcess
from ._supervisor import Supervisor
from ._tasks import BackgroundTask, Periodic, Work

__all__ = [
    "BackgroundTask",
    "Callbacks",
    "Component",
    "GroupCommit",
    "GroupCommitStoppedError",
    "Hook",
    "Lifecycle",
    "LifecycleError",
    "Periodic",
    "ProcessExitedError",
    "ProcessNotReadyError",
    "ReadinessProbe",
    "ServiceProcess",
    "Supervisor",
    "Work",
    "component",
    "die_with_parent",
    "free_port",
    "free_port_block",
    "parent_death_hook",
]
