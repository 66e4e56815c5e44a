"""The committed pact files and the check that a consumer test regenerates them unchanged.

A consumer test writes its pact into a scratch directory and :func:`assert_committed` compares
it with ``pacts/<consumer>-<provider>.json``: a change to what a consumer expects then shows in
review as a change to that file. ``PACT_UPDATE=1`` rewrites the committed file instead.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pact import Pact

PACTS = Path(__file__).resolve().parents[2] / "pacts"


def committed(consumer: str, provider: str) -> Path:
    return PACTS / f"{consumer}-{provider}.json"


def _comparable(path: Path) -> Any:
    document = json.loads(path.read_text())
    document.get("metadata", {}).pop("pactRust", None)  # the FFI's build, not the contract
    return document


def assert_committed(pact: Pact, scratch: Path, consumer: str, provider: str) -> None:
    """Write *pact* into *scratch* and check it equals the committed file."""
    pact.write_file(scratch, overwrite=True)
    fresh = scratch / f"{consumer}-{provider}.json"
    target = committed(consumer, provider)
    if os.environ.get("PACT_UPDATE") == "1":
        PACTS.mkdir(exist_ok=True)
        shutil.copyfile(fresh, target)
    assert target.exists(), f"{target} is missing: run the consumer tests with PACT_UPDATE=1"
    assert _comparable(fresh) == _comparable(target), (
        f"the consumer's expectations changed: {target.name} differs from what the consumer test"
        " generates (rerun with PACT_UPDATE=1 and commit the file if the change is intended)"
    )
