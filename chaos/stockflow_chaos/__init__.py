"""Probes, actions and controls of stockflow's ChaosToolkit experiments (``chaos/*.json``).

The experiments run against a system that ``tests/chaos`` started (``stockflow up
--distributed``): its description is a JSON file named by the experiment's configuration
key ``stockflow_context`` (from the environment variable ``STOCKFLOW_CHAOS_CONTEXT``), read
with :meth:`tests.system.system.System.attach`. ``chaos run`` needs the repository root and
this directory on ``PYTHONPATH``.

One ``chaos run`` is one process: the activities of an experiment share the load generators
and the measurements kept in :mod:`stockflow_chaos.state`.
"""
