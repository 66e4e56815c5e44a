"""The eventsourcing comparison applies the same rules: its stock equals the reference fold."""

from __future__ import annotations

from pathlib import Path

from eventsourcing.application import Application

from stockflow.bench.eventsourcing_app import Stock, run_eventsourcing
from stockflow.bench.workload import generate_workload


def test_eventsourcing_final_stock_equals_the_reference_fold_of_the_commands(
    tmp_path: Path,
) -> None:
    workload = generate_workload(events=3000, skus=40, seed=11)
    database = tmp_path / "es.sqlite3"
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(database)}
    result = run_eventsourcing(workload.envelopes, env, save_batch=100)
    assert not result.capped
    assert result.stock == workload.model.stock()
    assert result.events == workload.expected_events
    reader = Application[object](env=env)
    try:
        stored = reader.repository.get(Stock.open("SKU-000003").id)
    finally:
        reader.close()
    assert (stored.on_hand, stored.reserved) == workload.model.stock()["SKU-000003"]


def test_saving_one_aggregate_per_call_gives_the_same_stock(tmp_path: Path) -> None:
    workload = generate_workload(events=500, skus=10, seed=12)
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "e")}
    result = run_eventsourcing(workload.envelopes, env, save_batch=1)
    assert result.stock == workload.model.stock()
