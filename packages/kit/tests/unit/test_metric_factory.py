import gc

import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.observability.metrics import counter, gauge


def test_the_same_name_in_the_same_registry_is_one_instrument() -> None:
    registry = CollectorRegistry()
    first = counter("demo_things", "Things.", ["kind"], registry=registry)
    assert counter("demo_things", "Things.", ["kind"], registry=registry) is first


def test_a_new_registry_never_gets_instruments_of_a_collected_one() -> None:
    for _ in range(50):
        registry = CollectorRegistry()
        counter("demo_fresh", "Fresh.", registry=registry).inc()
        assert registry.get_sample_value("demo_fresh_total") == 1.0
        del registry
        gc.collect()


def test_asking_for_a_name_as_another_kind_is_an_error() -> None:
    registry = CollectorRegistry()
    counter("demo_kind", "Kind.", registry=registry)
    with pytest.raises(TypeError, match="already exists"):
        gauge("demo_kind", "Kind.", registry=registry)
