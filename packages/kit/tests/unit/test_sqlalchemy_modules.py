"""The SQLAlchemy adapters: their public names are pinned, and only they import SQLAlchemy (the
base install needs none)."""

from __future__ import annotations

import subprocess
import sys


def sqlalchemy_after_importing(*modules: str) -> bool:
    """Whether a fresh interpreter has SQLAlchemy loaded after importing *modules*."""
    probe = f"import sys, {', '.join(modules)}; print('sqlalchemy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip() == "True"


def test_the_http_and_messaging_packages_import_without_sqlalchemy() -> None:
    assert not sqlalchemy_after_importing(
        "stockflow_kit.http", "stockflow_kit.messaging", "stockflow_kit.messaging.retention"
    )


def test_only_the_sqlalchemy_modules_import_it() -> None:
    assert sqlalchemy_after_importing("stockflow_kit.messaging.sqlalchemy")
    assert sqlalchemy_after_importing("stockflow_kit.http.sqlalchemy")


def test_the_public_names_are_pinned() -> None:
    import stockflow_kit.http.sqlalchemy as http_sqlalchemy
    import stockflow_kit.messaging.sqlalchemy as messaging_sqlalchemy

    assert sorted(messaging_sqlalchemy.__all__) == [
        "SqlAlchemyInbox",
        "SqlAlchemyOutbox",
        "SqlConnection",
        "inbox_table",
        "outbox_table",
        "sqlalchemy_inbox_purge",
    ]
    assert sorted(http_sqlalchemy.__all__) == [
        "SqlAlchemyIdempotencyStore",
        "SqlConnection",
        "idempotency_table",
    ]
    for module in (messaging_sqlalchemy, http_sqlalchemy):
        assert all(hasattr(module, name) for name in module.__all__)
