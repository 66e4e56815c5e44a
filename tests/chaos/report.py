"""The chaos report: one row per experiment (status and measured figures), as JSON and as a
readable table under ``chaos/results/``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "chaos" / "results"

COLUMNS = (
    ("experiment", 24),
    ("status", 10),
    ("wall s", 7),
    ("recovery s", 11),
    ("lost orders", 12),
    ("retry ampl.", 12),
    ("max s", 6),
    ("5xx", 5),
    ("5xx not 503+RA", 15),
)


@dataclass
class Row:
    """One experiment: its journal's status, wall time and the figures it measured."""

    experiment: str
    status: str
    wall_seconds: float
    recovery_seconds: float | None = None
    lost_orders: int | None = None
    retry_amplification: float | None = None
    max_seconds: float | None = None
    """The slowest answer edge gave the experiment's clients."""
    five_xx: int | None = None
    five_xx_not_503_retry_after: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[str]:
        def show(value: object) -> str:
            return "-" if value is None else str(value)

        return [
            self.experiment,
            self.status,
            f"{self.wall_seconds:.0f}",
            show(self.recovery_seconds),
            show(self.lost_orders),
            show(self.retry_amplification),
            show(self.max_seconds),
            show(self.five_xx),
            show(self.five_xx_not_503_retry_after),
        ]


@dataclass
class Report:
    """The rows of a session's experiments."""

    rows: list[Row] = field(default_factory=list)
    written_this_session: ClassVar[bool] = False

    def table(self) -> str:
        lines = ["  ".join(title.ljust(width) for title, width in COLUMNS)]
        lines.append("  ".join("-" * width for _, width in COLUMNS))
        for row in self.rows:
            lines.append(
                "  ".join(c.ljust(w) for c, (_, w) in zip(row.cells(), COLUMNS, strict=True))
            )
        return "\n".join(lines)

    def add(self, row: Row) -> None:
        """Add *row* and rewrite the report at once (a later failure keeps it)."""
        self.rows.append(row)
        self.write(RESULTS)

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.json").write_text(
            json.dumps([asdict(row) for row in self.rows], indent=2, default=str) + "\n"
        )
        (directory / "summary.txt").write_text(self.table() + "\n")
        Report.written_this_session = True
