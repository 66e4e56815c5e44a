"""The design a team would write first, as a second peer of ``stockflow bench events``.

A conventional stock table, no event log: ``stock (sku, on_hand, reserved)``, the open order
lines in ``holds (order_id, sku, qty)`` and a ``processed (message_id)`` table for idempotency,
with SQLAlchemy Core (SQLite through pysqlite, PostgreSQL through psycopg). The same envelopes
as the worker's run, in publish order, one transaction per command:

* insert the message id into ``processed`` (``ON CONFLICT DO NOTHING``); nothing inserted: a
  duplicate, done;
* receive: upsert ``on_hand = on_hand + qty``; adjust: ``UPDATE … SET on_hand = on_hand + d
  WHERE on_hand + d >= reserved AND on_hand + d >= 0``;
* reserve: per SKU of the order, ``UPDATE stock SET reserved = reserved + q WHERE sku = :sku
  AND on_hand - reserved >= q``, then insert the holds; a line that updates no row rolls the
  transaction back, and a second transaction records the message id (a rejection: that is the
  only command that takes two);
* ship / release: ``DELETE FROM holds … RETURNING qty``, then take it off ``reserved`` (and
  ``on_hand``).

Durability as the worker's: SQLite in WAL with ``synchronous=FULL``; PostgreSQL's defaults
(``synchronous_commit`` on). The rate counts the state changes the event log would have
recorded (the reference model's events: a reserved line, a rejection, a receipt, …), so it
compares with the worker's events/s. The audit checks what this design can be checked for:
no SKU with ``reserved`` above ``on_hand`` or below 0, ``reserved`` equal to the sum of its
holds, one processed row per unique command handled and, for a run that was not capped, the
final stock equal to the reference model's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from stockflow_kit.messaging import Envelope

__all__ = ["CONVENTIONAL_TIME_CAP", "ConventionalResult", "run_conventional"]

CONVENTIONAL_TIME_CAP: Final = 30.0
"""Seconds the run may take (one transaction per command: the rate covers what was done)."""

_metadata = sa.MetaData()
_stock = sa.Table(
    "stock",
    _metadata,
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("on_hand", sa.BigInteger, nullable=False),
    sa.Column("reserved", sa.BigInteger, nullable=False),
)
_holds = sa.Table(
    "holds",
    _metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("qty", sa.BigInteger, nullable=False),
)
_processed = sa.Table("processed", _metadata, sa.Column("message_id", sa.Text, primary_key=True))


class _Shortfall(Exception):
    """A reservation line found less available than it asks: roll the transaction back."""


@dataclass(frozen=True)
class ConventionalResult:
    """What the conventional design did, and what its audit found."""

    events: int
    """State changes the event log would have recorded (the reference model's events)."""
    commands: int
    transactions: int
    seconds: float
    capped: bool
    stock: dict[str, tuple[int, int]]
    violations: list[str]

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class _Conventional:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.insert = sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert
        self.transactions = 0

    def handle(self, kind: str, data: dict[str, Any], message_id: str) -> int:
        """Apply one command in its own transaction; return the state changes it made."""
        try:
            with self.engine.begin() as conn:
                self.transactions += 1
                if not self._first_time(conn, message_id):
                    return 0
                return self._apply(conn, kind, data)
        except _Shortfall:
            with self.engine.begin() as conn:  # the rejection: only the message id stays
                self.transactions += 1
                self._first_time(conn, message_id)
            return 1

    def _first_time(self, conn: sa.Connection, message_id: str) -> bool:
        statement = self.insert(_processed).values(message_id=message_id)
        # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
        inserted = conn.execute(
            statement.on_conflict_do_nothing().returning(_processed.c.message_id)
        )
        return inserted.scalar_one_or_none() is not None

    def _apply(self, conn: sa.Connection, kind: str, data: dict[str, Any]) -> int:
        if kind == "ReceiveStock":
            upsert = self.insert(_stock).values(sku=data["sku"], on_hand=data["qty"], reserved=0)
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[_stock.c.sku],
                    set_={"on_hand": _stock.c.on_hand + upsert.excluded.on_hand},
                )
            )
            return 1
        if kind == "AdjustStock":
            delta = data["delta"]
            if delta == 0:
                return 0
            after = _stock.c.on_hand + delta
            changed = conn.execute(
                sa.update(_stock)
                .where(_stock.c.sku == data["sku"], after >= _stock.c.reserved, after >= 0)
                .values(on_hand=after)
            )
            return changed.rowcount
        if kind == "ReserveStock":
            return self._reserve(conn, data["order_id"], data["lines"])
        return self._settle(conn, data["order_id"], data["skus"], ship=kind == "ShipStock")

    def _reserve(self, conn: sa.Connection, order_id: str, lines: Iterable[dict[str, Any]]) -> int:
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line["sku"]] = wanted.get(line["sku"], 0) + line["qty"]
        held = conn.execute(
            sa.select(sa.func.count())
            .select_from(_holds)
            .where(_holds.c.order_id == order_id, _holds.c.sku.in_(list(wanted)))
        ).scalar_one()
        if held:
            return 0  # the order already holds one of these SKUs: nothing to do
        for sku in sorted(wanted):  # one lock order, as concurrent writers would need
            qty = wanted[sku]
            changed = conn.execute(
                sa.update(_stock)
                .where(_stock.c.sku == sku, _stock.c.on_hand - _stock.c.reserved >= qty)
                .values(reserved=_stock.c.reserved + qty)
            )
            if changed.rowcount != 1:
                raise _Shortfall(sku)
        conn.execute(
            sa.insert(_holds),
            [{"order_id": order_id, "sku": sku, "qty": qty} for sku, qty in wanted.items()],
        )
        return len(wanted)

    def _settle(
        self, conn: sa.Connection, order_id: str, skus: Iterable[str], *, ship: bool
    ) -> int:
        changes = 0
        for sku in skus:
            qty = conn.execute(
                sa.delete(_holds)
                .where(_holds.c.order_id == order_id, _holds.c.sku == sku)
                .returning(_holds.c.qty)
            ).scalar_one_or_none()
            if qty is None:
                continue
            values: dict[str, Any] = {"reserved": _stock.c.reserved - qty}
            if ship:
                values["on_hand"] = _stock.c.on_hand - qty
            conn.execute(sa.update(_stock).where(_stock.c.sku == sku).values(**values))
            changes += 1
        return changes

    def stock(self) -> dict[str, tuple[int, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_stock.c.sku, _stock.c.on_hand, _stock.c.reserved))
            return {sku: (int(on_hand), int(reserved)) for sku, on_hand, reserved in rows}

    def violations(self, handled: int) -> list[str]:
        """What the audit of this design finds (empty: every check passed)."""
        found: list[str] = []
        with self.engine.connect() as conn:
            bad = conn.execute(
                sa.select(sa.func.count()).where(
                    sa.or_(_stock.c.reserved > _stock.c.on_hand, _stock.c.reserved < 0)
                )
            ).scalar_one()
            if bad:
                found.append(f"{bad} SKU(s) with reserved above on_hand or below 0")
            held = (
                sa.select(_holds.c.sku, sa.func.sum(_holds.c.qty).label("qty"))
                .group_by(_holds.c.sku)
                .subquery()
            )
            mismatched = conn.execute(
                sa.select(sa.func.count())
                .select_from(_stock.outerjoin(held, held.c.sku == _stock.c.sku))
                .where(_stock.c.reserved != sa.func.coalesce(held.c.qty, 0))
            ).scalar_one()
            if mismatched:
                found.append(f"{mismatched} SKU(s) whose reserved is not the sum of its holds")
            processed = conn.execute(
                sa.select(sa.func.count()).select_from(_processed)
            ).scalar_one()
            if processed != handled:
                found.append(f"{processed} processed ids for {handled} unique commands handled")
        return found


def _durable_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()


def run_conventional(
    envelopes: list[Envelope],
    url: str,
    *,
    time_cap: float = CONVENTIONAL_TIME_CAP,
    progress: Callable[[str], None] | None = None,
) -> ConventionalResult:
    """Apply *envelopes* in order to a fresh conventional schema at *url* (a SQLAlchemy URL:
    ``sqlite:///…`` or ``postgresql+psycopg://…``)."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        _durable_sqlite(engine)
    try:
        _metadata.create_all(engine)
        app = _Conventional(engine)
        seen: set[str] = set()
        events = done = 0
        capped = False
        started = time.perf_counter()
        for done, envelope in enumerate(envelopes, 1):
            seen.add(envelope.id)
            events += app.handle(envelope.type, envelope.data, envelope.id)
            if done % 2_000 == 0:
                elapsed = time.perf_counter() - started
                if progress is not None and done % 10_000 == 0:
                    progress(
                        f"conventional: {done}/{len(envelopes)} commands,"
                        f" {events / elapsed:,.0f} events/s"
                    )
                if elapsed > time_cap:
                    capped = True
                    break
        seconds = time.perf_counter() - started
        return ConventionalResult(
            events=events,
            commands=done,
            transactions=app.transactions,
            seconds=seconds,
            capped=capped,
            stock=app.stock(),
            violations=app.violations(len(seen)),
        )
    finally:
        engine.dispose()
