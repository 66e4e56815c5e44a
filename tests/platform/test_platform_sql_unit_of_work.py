"""The platform's unit of work without an outbox (a service that publishes nothing)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from stockflow.platform.sql import SqlUnitOfWork, database_for
from stockflow_kit.messaging import Envelope


async def test_a_unit_of_work_without_an_outbox_commits_and_refuses_to_publish() -> None:
    database = database_for("memory://", name="platform-test")
    try:
        async with SqlUnitOfWork(database) as uow:
            await uow.connection.execute(text("CREATE TABLE t (x INTEGER)"))
            await uow.connection.execute(text("INSERT INTO t VALUES (1)"))
            envelope = Envelope.new("Thing", {}, source="test", subject="s")
            with pytest.raises(RuntimeError, match="no outbox"):
                uow.publish("things.events", [envelope])
            await uow.commit()
        async with database.reader.connect() as connection:
            assert (await connection.execute(text("SELECT x FROM t"))).scalar() == 1
    finally:
        await database.dispose()
