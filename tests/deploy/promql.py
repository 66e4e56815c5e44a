"""The metric names a PromQL expression uses, and the sample names a running service exports.

Both sides are deliberately plain: a name in an expression is an identifier that is not a
function, keyword, label name or recording rule; an exported name is each metric family's
sample names (a counter ``x`` is ``x_total``; a histogram ``x`` is ``x_bucket``, ``x_count``,
``x_sum``), read from ``/metrics`` with prometheus_client's own parser, so a family that has
no labelled child yet (``messaging_messages_total`` before the first message) still counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_LABELS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NOT_METRICS = frozenset(
    {
        # aggregations, functions and keywords the rules and panels use (PromQL)
        "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
        "max_over_time", "min_over_time", "avg_over_time", "clamp_min", "and", "or", "unless",
        "by", "without", "on", "ignoring", "offset", "bool", "topk", "label_replace", "abs",
        "vector", "time", "le",
    }
)  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric (and recording-rule) names *expr* selects."""
    text = _STRINGS.sub('""', expr)
    text = _LABELS.sub("", text)
    text = _GROUPING.sub("", text)
    text = _RANGES.sub("", text)
    text = re.sub(r"(?<![\w:.])\d+(?:\.\d+)?(?:e[+-]?\d+)?", "", text)
    return {name for name in _IDENT.findall(text) if name not in _NOT_METRICS}


def exported_names(expositions: Iterable[str]) -> set[str]:
    """Every sample name the ``/metrics`` texts *expositions* export."""
    names: set[str] = set()
    for text in expositions:
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
    return names
