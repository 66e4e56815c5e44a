"""The inventory writer's metrics, created per registry (one registry per service instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from stockflow_kit.observability import counter, histogram

__all__ = ["WriterMetrics"]

_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class WriterMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.commands = counter(
            "inventory_commands",
            "Commands handled by the writer, by outcome (applied, rejected, duplicate).",
            ["outcome"],
            registry=registry,
        )
        self.events = counter(
            "inventory_events_committed", "Events committed by this writer.", registry=registry
        )
        self.conflicts = counter(
            "inventory_commit_conflicts",
            "Commits refused because another writer moved the fence or a stream (then retried).",
            ["error"],
            registry=registry,
        )
        self.invariant_violations = counter(
            "inventory_invariant_violations",
            "States that would have broken an invariant; their batch was refused.",
            registry=registry,
        )
        self.decide_failures = counter(
            "inventory_decide_failures",
            "Batches whose decision raised an unexpected error (a bug); their callers failed.",
            ["error"],
            registry=registry,
        )
        self.batch_size = histogram(
            "inventory_batch_size",
            "Fresh commands per committed batch.",
            registry=registry,
            buckets=_BATCH_BUCKETS,
        )
        self.commit_seconds = histogram(
            "inventory_commit_duration_seconds", "Duration of one batch commit.", registry=registry
        )
