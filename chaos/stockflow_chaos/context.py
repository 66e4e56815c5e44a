"""Reaching the system under test: its description, its URLs, tokens and ``/metrics``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.system.system import System

Configuration = Mapping[str, Any]


def described(configuration: Configuration) -> dict[str, Any]:
    """The JSON document named by the configuration's ``stockflow_context``."""
    document: dict[str, Any] = json.loads(Path(configuration["stockflow_context"]).read_text())
    return document


def system(configuration: Configuration) -> System:
    """The started system the experiment runs against."""
    return System.attach(described(configuration)["system"])


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the Prometheus exposition at *url* (``{(name, labels): value}``)."""
    text = httpx.get(url, timeout=5, trust_env=False).text
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric_sum(
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float],
    metric: str,
    /,
    *,
    exclude: Mapping[str, tuple[str, ...]] | None = None,
    **labels: str,
) -> float:
    """The sum of the samples called *metric* whose labels include *labels* and whose labels
    named in *exclude* have none of the values given there."""
    total = 0.0
    for (sample_name, sample_labels), value in samples.items():
        if sample_name != metric:
            continue
        found = dict(sample_labels)
        if any(found.get(k) != v for k, v in labels.items()):
            continue
        if exclude and any(found.get(k) in values for k, values in exclude.items()):
            continue
        total += value
    return total


PROBE_ROUTES = ("/readyz", "/healthz", "/metrics")
"""Routes of the orchestrator, not of users: a ``/readyz`` 503 while a service starts is its
answer, not an error."""


def five_xx(
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], status: str = ""
) -> float:
    """Requests to a service's user routes answered with a 5xx (or exactly *status*), from
    its ``http_requests_total``."""
    total = 0.0
    for (name, labels), value in samples.items():
        found = dict(labels)
        if name != "http_requests_total" or found.get("route") in PROBE_ROUTES:
            continue
        if found.get("status", "").startswith("5") and status in ("", found.get("status")):
            total += value
    return total
