"""``stockflow bench events --preload``: the history it writes through the store's bulk path.
(The CLI run with ``--preload`` is in ``test_events_bench_smoke``.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from stockflow.bench.backends import embedded_backend
from stockflow.bench.workload import generate_workload
from stockflow.runtime.bench_preload import preload_inventory


async def test_the_preload_writes_a_history_the_worker_can_load(tmp_path: Path) -> None:
    backend = embedded_backend(prefix=f"{tmp_path}/")
    skus = generate_workload(events=100, skus=8, seed=1).skus
    preloaded = await preload_inventory(
        backend.event_store_url, events=1000, skus=skus, seed=1, say=lambda _line: None
    )
    path = backend.event_store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        events, last = db.execute("SELECT count(*), max(position) FROM events").fetchone()
        stock = db.execute("SELECT sum(on_hand), sum(reserved) FROM stock").fetchone()
        snapshots = db.execute("SELECT count(*) FROM snapshots").fetchone()[0]
        streams = db.execute("SELECT count(DISTINCT stream_id) FROM events").fetchone()[0]
    assert (events, last, preloaded.last_position, preloaded.events) == (1000, 1000, 1000, 1000)
    assert stock == (0, 0)  # every cycle leaves its SKU empty: the workload starts from zero
    assert snapshots == streams
    backend.preloaded = preloaded
    assert await backend.counts() == (0, 0)  # the history is left out of the run's counts
    await backend.cleanup()
